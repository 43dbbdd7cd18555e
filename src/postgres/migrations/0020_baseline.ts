/**
 * Migration 0020: the baseline — every table, index, constraint and storage setting of the
 * schema, in one migration. It stands in for the migrations 0001–0020 of the first schema
 * layout (which also defined the functions): a fresh schema applies it, a schema already at
 * migration 20 skips it (the migrator runs only ids above the newest applied one). Later
 * changes of the tables are new migrations, 0021 onwards; the functions are the function
 * library of `src/postgres/sql/`, installed after the migrations (see `../internal/library.ts`).
 *
 * Runs with `search_path` set to the deployment's schema, so names are unqualified.
 *
 * Storage choices:
 * - `exec_core` and `attempt` at fillfactor 50: a claim and a completion each write a new
 *   version of the row, and at 50 about 95 % of those updates stay on the page (HOT) instead of
 *   inserting into every index;
 * - `ready` and `timer` churn (a row per claimable execution, a row per pending timer): fillfactor
 *   70 and autovacuum by row count rather than by table fraction;
 * - the dedup tables carry an index on `expires_at` for the retention pass, which deletes
 *   expired rows the oldest first.
 */
export const sql = String.raw`
-- ---------------------------------------------------------------------------
-- the exec_core row invariants
-- ---------------------------------------------------------------------------

-- The one function of the schema (the CHECK constraint of exec_core calls it, so it changes only
-- with a migration; every other function is in the function library, src/postgres/sql/).
-- PostgreSQL rebuilds every CHECK expression from its stored text in every INSERT / UPDATE
-- statement (the IN lists byte by byte), which cost more than the rest of the update; the
-- function's expressions are compiled once per session. A violation is SQLSTATE 23514.
CREATE FUNCTION ffi_exec_core_row_ok(
  p_phase text, p_own text, p_elig text, p_outcome text, p_att text, p_priority int
) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN p_phase IN ('submitted','runnable','active','suspended','terminal')
    AND p_own IN ('unowned','leased','lease_expired_reclaimable','lease_revoked')
    AND p_elig IN ('eligible_now','not_eligible_until_time','blocked_by_dependencies','blocked_by_budget',
                   'blocked_by_quota','blocked_by_route','blocked_by_lane_state','blocked_by_operator','not_applicable')
    AND p_outcome IN ('none','success','failed','cancelled','expired','skipped')
    AND p_att IN ('none','pending_first_attempt','running_attempt','attempt_interrupted','pending_retry_attempt',
                  'pending_replay_attempt','attempt_terminal')
    AND p_priority BETWEEN 0 AND 9000
    -- combinations that must never be persisted (docs/design/executions.md#forbidden-combinations)
    AND (p_own <> 'leased' OR p_phase = 'active')
    AND ((p_outcome = 'none') = (p_phase <> 'terminal'))
    AND (p_phase <> 'active' OR p_own <> 'unowned');
END $$;
-- ---------------------------------------------------------------------------
-- executions
-- ---------------------------------------------------------------------------

CREATE TABLE exec_core (
  execution_id                   text COLLATE "C" PRIMARY KEY,
  partition_key                  int NOT NULL,
  lane_id                        text COLLATE "C" NOT NULL,
  namespace                      text NOT NULL,
  execution_kind                 text NOT NULL,
  flow_id                        uuid,
  priority                       int NOT NULL,
  required_caps                  text[] NOT NULL DEFAULT '{}',
  lifecycle_phase                text NOT NULL,
  ownership_state                text NOT NULL,
  eligibility_state              text NOT NULL,
  blocking_reason                text NOT NULL,
  blocking_detail                text NOT NULL DEFAULT '',
  terminal_outcome               text NOT NULL DEFAULT 'none',
  attempt_state                  text NOT NULL,
  public_state                   text NOT NULL,
  total_attempt_count            int NOT NULL DEFAULT 0,
  current_attempt_index          int,
  current_attempt_id             uuid,
  lease_epoch                    bigint NOT NULL DEFAULT 0,
  lease_id                       uuid,
  worker_id                      text,
  worker_instance_id             text,
  lease_ttl_ms                   bigint,
  lease_acquired_at              bigint,
  lease_expires_at               bigint,
  lease_last_renewed_at          bigint,
  lease_expired_at               bigint,
  lease_revoked_at               bigint,
  lease_revoke_reason            text,
  retry_count                    int NOT NULL DEFAULT 0,
  replay_count                   int NOT NULL DEFAULT 0,
  lease_reclaim_count            int NOT NULL DEFAULT 0,
  max_reclaim_count              int NOT NULL DEFAULT 100,
  max_replay_count               int NOT NULL DEFAULT 10,
  attempt_timeout_ms             bigint,
  delay_until                    bigint,
  execution_deadline_at          bigint,
  attempt_timeout_at             bigint,
  current_suspension_id          uuid,
  current_waitpoint_id           uuid,
  pending_retry_reason           text,
  pending_previous_attempt_index int,
  pending_replay_reason          text,
  pending_replay_requested_by    text,
  progress_pct                   int,
  progress_message               text,
  progress_updated_at            bigint,
  failure_reason                 text,
  cancellation_reason            text,
  cancelled_by                   text,
  created_at                     bigint NOT NULL,
  started_at                     bigint,
  completed_at                   bigint,
  last_transition_at             bigint NOT NULL,
  last_mutation_at               bigint NOT NULL,
  last_capability_mismatch_at    bigint,
  -- a claim grant row exists (spares the hot path a lookup of the grant table)
  has_grant                      boolean NOT NULL DEFAULT false,
  last_hmac_validation_failed_at bigint,
  -- the row invariants, as one CHECK over a function (see ffi_exec_core_row_ok)
  CONSTRAINT exec_core_row CHECK (ffi_exec_core_row_ok(lifecycle_phase, ownership_state, eligibility_state,
                                                      terminal_outcome, attempt_state, priority))
) WITH (fillfactor = 50);

CREATE INDEX exec_core_by_partition ON exec_core (partition_key, execution_id);
CREATE INDEX exec_core_by_flow ON exec_core (flow_id, execution_id) WHERE flow_id IS NOT NULL;

-- Cold per-execution data: written at create (and result at complete).
CREATE TABLE exec_data (
  execution_id     text COLLATE "C" PRIMARY KEY,
  payload          bytea NOT NULL,
  payload_encoding text,
  result           bytea,
  policy           jsonb,
  tags             jsonb NOT NULL DEFAULT '{}',
  creator_identity text NOT NULL DEFAULT '',
  idempotency_key  text
);

-- Idempotency keys of create_execution (24 h, scope partition + namespace).
CREATE TABLE exec_idempotency (
  partition_key   int NOT NULL,
  namespace       text NOT NULL,
  idempotency_key text NOT NULL,
  execution_id    text COLLATE "C" NOT NULL,
  expires_at      bigint NOT NULL,
  PRIMARY KEY (partition_key, namespace, idempotency_key)
);
CREATE INDEX exec_idempotency_expiry ON exec_idempotency (expires_at);

CREATE TABLE attempt (
  execution_id       text COLLATE "C" NOT NULL,
  attempt_index      int NOT NULL,
  attempt_id         uuid NOT NULL,
  attempt_type       text NOT NULL,
  attempt_state      text NOT NULL,
  created_at         bigint NOT NULL,
  started_at         bigint,
  resumed_at         bigint,
  suspended_at       bigint,
  ended_at           bigint,
  lease_id           uuid,
  lease_epoch        bigint,
  worker_id          text,
  worker_instance_id text,
  suspension_id      text,
  failure_reason     text,
  failure_category   text,
  previous_attempt_index int,
  PRIMARY KEY (execution_id, attempt_index)
) WITH (fillfactor = 50);

-- The claimable set: one narrow row per execution a claim may take (fresh,
-- interrupted or reclaimable), in claim order.
CREATE TABLE ready (
  execution_id  text COLLATE "C" PRIMARY KEY,
  lane_id       text COLLATE "C" NOT NULL,
  priority      int NOT NULL,
  created_at    bigint NOT NULL,
  seq           bigint GENERATED ALWAYS AS IDENTITY,
  required_caps text[] NOT NULL DEFAULT '{}'
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
         autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 2000);
CREATE INDEX ready_claim_order ON ready (lane_id, priority DESC, created_at, seq);

-- Every time-driven transition: delay / backoff promotion, lease expiry,
-- attempt timeout, execution deadline, suspension timeout, pending waitpoint
-- expiry, budget reset. Truth lives in the owning row; a timer is a hint.
CREATE TABLE timer (
  kind   text NOT NULL,
  ref    text COLLATE "C" NOT NULL,
  due_at bigint NOT NULL,
  PRIMARY KEY (kind, ref)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
         autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 2000);
CREATE INDEX timer_due ON timer (kind, due_at);
-- every terminal or lease-releasing transition deletes an execution's timers by ref
CREATE INDEX timer_by_ref ON timer (ref);

CREATE TABLE lane_registry (
  lane_id       text COLLATE "C" PRIMARY KEY,
  registered_at bigint NOT NULL
);

-- Claim grants (claim_for_worker, claim_resumed_execution, claim_from_reclaim).
CREATE TABLE claim_grant (
  execution_id       text COLLATE "C" PRIMARY KEY,
  grant_key          text NOT NULL,
  kind               text NOT NULL,
  worker_id          text NOT NULL,
  worker_instance_id text NOT NULL,
  lane_id            text NOT NULL,
  created_at         bigint NOT NULL,
  expires_at         bigint NOT NULL
);

-- ---------------------------------------------------------------------------
-- flows and dependencies
-- ---------------------------------------------------------------------------

CREATE TABLE flow_core (
  flow_id             uuid PRIMARY KEY,
  partition_key       int NOT NULL,
  flow_kind           text NOT NULL,
  namespace           text NOT NULL,
  public_flow_state   text NOT NULL,
  graph_revision      bigint NOT NULL DEFAULT 0,
  node_count          int NOT NULL DEFAULT 0,
  edge_count          int NOT NULL DEFAULT 0,
  -- members not yet terminal, and terminal members that failed / were cancelled / expired:
  -- an open flow whose members are all terminal settles to completed or failed
  live_members        int NOT NULL DEFAULT 0,
  failed_members      int NOT NULL DEFAULT 0,
  created_at          bigint NOT NULL,
  last_mutation_at    bigint NOT NULL,
  cancelled_at        bigint,
  cancel_reason       text,
  cancellation_policy text,
  tags                jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX flow_core_by_partition ON flow_core (partition_key, flow_id);

CREATE TABLE flow_edge (
  flow_id                uuid NOT NULL,
  edge_id                uuid NOT NULL,
  upstream_id            text COLLATE "C" NOT NULL,
  downstream_id          text COLLATE "C" NOT NULL,
  dependency_kind        text NOT NULL,
  satisfaction_condition text NOT NULL,
  data_passing_ref       text,
  edge_state             text NOT NULL,
  created_at             bigint NOT NULL,
  created_by             text NOT NULL,
  PRIMARY KEY (flow_id, edge_id)
);
CREATE INDEX flow_edge_out ON flow_edge (flow_id, upstream_id);
CREATE INDEX flow_edge_in ON flow_edge (flow_id, downstream_id);

-- One row per (downstream, applied edge).
CREATE TABLE dep (
  downstream_id    text COLLATE "C" NOT NULL,
  edge_id          uuid NOT NULL,
  flow_id          uuid NOT NULL,
  upstream_id      text COLLATE "C" NOT NULL,
  dependency_kind  text NOT NULL,
  data_passing_ref text,
  state            text NOT NULL,
  created_at       bigint NOT NULL,
  last_resolved_at bigint,
  PRIMARY KEY (downstream_id, edge_id)
);
CREATE INDEX dep_unresolved_by_upstream ON dep (upstream_id) WHERE state = 'unsatisfied';

CREATE TABLE edge_group (
  downstream_id           text COLLATE "C" PRIMARY KEY,
  flow_id                 uuid NOT NULL,
  policy_variant          text NOT NULL,
  on_satisfied            text,
  k                       int NOT NULL DEFAULT 0,
  n                       int NOT NULL DEFAULT 0,
  succeeded               int NOT NULL DEFAULT 0,
  failed                  int NOT NULL DEFAULT 0,
  skipped                 int NOT NULL DEFAULT 0,
  group_state             text NOT NULL DEFAULT 'pending',
  created_at              bigint NOT NULL,
  satisfied_at            bigint,
  cancel_siblings_pending boolean NOT NULL DEFAULT false,
  cancel_siblings_reason  text,
  cancel_siblings_members text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX edge_group_sibling_cancels ON edge_group (downstream_id) WHERE cancel_siblings_pending;

-- Upstreams whose outgoing edges still need resolving (a bounded cascade
-- continues here; the dependency pass drains it).
CREATE TABLE dep_pending (
  execution_id text COLLATE "C" PRIMARY KEY,
  outcome      text NOT NULL,
  enqueued_at  bigint NOT NULL
);

CREATE TABLE cancel_backlog (
  flow_id             uuid PRIMARY KEY,
  requested_at        bigint NOT NULL,
  grace_until         bigint NOT NULL,
  reason              text NOT NULL DEFAULT '',
  cancellation_policy text NOT NULL
);
CREATE INDEX cancel_backlog_due ON cancel_backlog (grace_until);

CREATE TABLE cancel_owed (
  flow_id      uuid NOT NULL,
  execution_id text COLLATE "C" NOT NULL,
  PRIMARY KEY (flow_id, execution_id)
);
CREATE INDEX cancel_owed_by_execution ON cancel_owed (execution_id);

-- ---------------------------------------------------------------------------
-- suspension, waitpoints, signals, HMAC keystore
-- ---------------------------------------------------------------------------

CREATE TABLE suspension (
  execution_id          text COLLATE "C" PRIMARY KEY,
  partition_key         int NOT NULL,
  suspension_id         uuid NOT NULL,
  attempt_index         int NOT NULL,
  waitpoint_id          uuid NOT NULL,
  waitpoint_key         text NOT NULL,
  additional            jsonb NOT NULL DEFAULT '[]',
  reason_code           text NOT NULL,
  requested_by          text NOT NULL,
  created_at            bigint NOT NULL,
  timeout_at            bigint,
  timeout_behavior      text NOT NULL,
  condition             jsonb NOT NULL,
  cond_state            jsonb NOT NULL,
  resume_policy         jsonb NOT NULL,
  continuation_pointer  text,
  last_signal_at        bigint,
  satisfied_at          bigint,
  closed_at             bigint,
  close_reason          text,
  closer_signal_id      uuid,
  satisfiers            uuid[] NOT NULL DEFAULT '{}'
);
CREATE INDEX suspension_open ON suspension (partition_key, (coalesce(timeout_at, 9999999999999)), execution_id)
  WHERE closed_at IS NULL;

CREATE TABLE waitpoint (
  waitpoint_id          uuid PRIMARY KEY,
  execution_id          text COLLATE "C" NOT NULL,
  attempt_index         int NOT NULL,
  suspension_id         uuid,
  waitpoint_key         text NOT NULL,
  token                 text,
  token_kid             text,
  state                 text NOT NULL,
  created_at            bigint NOT NULL,
  activated_at          bigint,
  satisfied_at          bigint,
  closed_at             bigint,
  expires_at            bigint,
  close_reason          text,
  signal_count          int NOT NULL DEFAULT 0,
  matched_signal_count  int NOT NULL DEFAULT 0,
  last_signal_at        bigint,
  required_signal_names text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX waitpoint_by_execution ON waitpoint (execution_id, waitpoint_id);

CREATE TABLE signal (
  seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  signal_id        uuid NOT NULL,
  execution_id     text COLLATE "C" NOT NULL,
  waitpoint_id     uuid NOT NULL,
  waitpoint_key    text NOT NULL,
  signal_name      text NOT NULL,
  signal_category  text NOT NULL,
  source_type      text NOT NULL,
  source_identity  text NOT NULL,
  correlation_id   text NOT NULL DEFAULT '',
  idempotency_key  text,
  target_scope     text NOT NULL,
  payload          bytea,
  payload_encoding text NOT NULL,
  created_at       bigint NOT NULL,
  accepted_at      bigint NOT NULL,
  observed_effect  text NOT NULL
);
CREATE INDEX signal_by_execution ON signal (execution_id, seq);
CREATE INDEX signal_by_waitpoint ON signal (waitpoint_id, seq);

CREATE TABLE signal_dedup (
  waitpoint_id    uuid NOT NULL,
  idempotency_key text NOT NULL,
  signal_id       uuid NOT NULL,
  expires_at      bigint NOT NULL,
  PRIMARY KEY (waitpoint_id, idempotency_key)
);
CREATE INDEX signal_dedup_expiry ON signal_dedup (expires_at);

CREATE TABLE suspend_dedup (
  execution_id    text COLLATE "C" NOT NULL,
  idempotency_key text NOT NULL,
  outcome         jsonb NOT NULL,
  expires_at      bigint NOT NULL,
  PRIMARY KEY (execution_id, idempotency_key)
);
CREATE INDEX suspend_dedup_expiry ON suspend_dedup (expires_at);

CREATE TABLE hmac_kid (
  kid        text PRIMARY KEY,
  secret     bytea NOT NULL,
  is_current boolean NOT NULL,
  expires_at bigint,
  created_at bigint NOT NULL
);
CREATE UNIQUE INDEX hmac_kid_one_current ON hmac_kid (is_current) WHERE is_current;

-- ---------------------------------------------------------------------------
-- streams
-- ---------------------------------------------------------------------------

CREATE TABLE stream_meta (
  execution_id      text COLLATE "C" NOT NULL,
  attempt_index     int NOT NULL,
  attempt_id        uuid,
  created_at        bigint NOT NULL,
  closed_at         bigint,
  closed_reason     text,
  frame_count       bigint NOT NULL DEFAULT 0,
  retained          bigint NOT NULL DEFAULT 0,
  total_bytes       bigint NOT NULL DEFAULT 0,
  last_ts           bigint NOT NULL DEFAULT 0,
  last_seq          int NOT NULL DEFAULT 0,
  last_frame_at     bigint,
  has_durable_frame boolean NOT NULL DEFAULT false,
  ema_rate_hz       double precision,
  last_append_ts    bigint NOT NULL DEFAULT 0,
  maxlen_applied    int NOT NULL DEFAULT 0,
  be_expires_at     bigint,
  PRIMARY KEY (execution_id, attempt_index)
);

CREATE TABLE stream_frame (
  execution_id  text COLLATE "C" NOT NULL,
  attempt_index int NOT NULL,
  ts            bigint NOT NULL,
  seq           int NOT NULL,
  mode          text NOT NULL,
  fields        jsonb NOT NULL,
  PRIMARY KEY (execution_id, attempt_index, ts, seq)
);

CREATE TABLE stream_summary (
  execution_id  text COLLATE "C" NOT NULL,
  attempt_index int NOT NULL,
  document      jsonb NOT NULL,
  version       int NOT NULL,
  patch_kind    text NOT NULL,
  first_applied bigint NOT NULL,
  last_updated  bigint NOT NULL,
  PRIMARY KEY (execution_id, attempt_index)
);

-- ---------------------------------------------------------------------------
-- budgets and quotas
-- ---------------------------------------------------------------------------

CREATE TABLE budget (
  budget_id         uuid PRIMARY KEY,
  partition_key     int NOT NULL,
  scope_type        text NOT NULL,
  scope_id          text NOT NULL,
  enforcement_mode  text NOT NULL,
  on_hard_limit     text NOT NULL,
  on_soft_limit     text NOT NULL,
  reset_interval_ms bigint NOT NULL DEFAULT 0,
  breach_count      bigint NOT NULL DEFAULT 0,
  soft_breach_count bigint NOT NULL DEFAULT 0,
  last_breach_at    bigint,
  last_breach_dim   text,
  next_reset_at     bigint,
  reset_count       bigint NOT NULL DEFAULT 0,
  last_reset_at     bigint,
  created_at        bigint NOT NULL,
  last_updated_at   bigint NOT NULL
);

CREATE TABLE budget_limit (
  budget_id  uuid NOT NULL,
  dimension  text COLLATE "C" NOT NULL,
  hard_limit bigint NOT NULL DEFAULT 0,
  soft_limit bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (budget_id, dimension)
);

CREATE TABLE budget_usage (
  budget_id uuid NOT NULL,
  dimension text COLLATE "C" NOT NULL,
  value     bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (budget_id, dimension)
);

CREATE TABLE budget_dedup (
  budget_id  uuid NOT NULL,
  dedup_key  text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (budget_id, dedup_key)
);
CREATE INDEX budget_dedup_expiry ON budget_dedup (expires_at);

CREATE TABLE quota_policy (
  quota_policy_id        uuid PRIMARY KEY,
  partition_key          int NOT NULL,
  window_seconds         bigint NOT NULL,
  max_requests_per_window bigint NOT NULL,
  max_concurrent         bigint NOT NULL,
  active_concurrency     bigint NOT NULL DEFAULT 0,
  created_at             bigint NOT NULL
);

-- Partition counts of the deployment, fixed for its lifetime.
CREATE TABLE partition_config (
  singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  num_flow_partitions int NOT NULL,
  num_budget_partitions int NOT NULL,
  num_quota_partitions int NOT NULL
);
`
