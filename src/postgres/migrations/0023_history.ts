/**
 * Migration 0023: what a snapshot tells about an execution's past, kept out of `exec_core`
 * (docs/design/executions.md, "Attempt history"):
 * - `exec_history`: the runs of its attempts that ended (one per lease), the last 20
 *   (`Limits.historyRuns`) by `seq`, the run's number within the execution;
 * - `exec_failure`: its last failure;
 * - `exec_data.trace_context`: the creator's span context (docs/observability.md), compact.
 * An execution that never ran, never failed and was created outside a trace has no row in
 * either table and a NULL column.
 */
export const sql = String.raw`
CREATE TABLE exec_history (
  execution_id       text COLLATE "C" NOT NULL,
  seq                int NOT NULL,
  attempt_index      int NOT NULL,
  kind               text NOT NULL,
  worker_id          text NOT NULL,
  worker_instance_id text NOT NULL,
  started_at         bigint NOT NULL,
  ended_at           bigint NOT NULL,
  outcome            text NOT NULL,
  reason             text,
  PRIMARY KEY (execution_id, seq)
);

CREATE TABLE exec_failure (
  execution_id   text COLLATE "C" PRIMARY KEY,
  failed_at      bigint NOT NULL,
  classification text NOT NULL,
  category       text NOT NULL,
  reason         text NOT NULL
);

ALTER TABLE exec_data ADD COLUMN trace_context text;
`
