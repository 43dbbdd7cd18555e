// Calls of the Postgres library's functions straight from a `pg` session, for the tests that watch
// what one session's statements read (its plans) or in what order sessions lock: a batch create's
// item, a set completion followed by a claim, and the server's cumulative statistics of a schema.
import pg from "pg"
import { expect } from "vitest"

/** A claimed execution as `ff_complete_claim` returns it. */
export interface Handle {
  readonly executionId: string
  readonly attemptIndex: number
  readonly attemptId: string
  readonly leaseId: string
  readonly leaseEpoch: number
}

/** One item of `ff_create_executions` / `ff_create_flow_graph`: an input of `{}`, nothing optional. */
export const libraryItem = (executionId: string, partition: number, laneId: string, namespace = "default") => ({
  executionId,
  partition,
  namespace,
  laneId,
  executionKind: "k",
  payload: Buffer.from("{}").toString("base64"),
  payloadEncoding: "json",
  priority: 0,
  creatorIdentity: "",
  idempotencyKey: null,
  tags: {},
  policy: null,
  requiredCapabilities: [],
  delayUntil: null,
  executionDeadlineAt: null,
  attemptTimeoutMs: null,
  maxReclaimCount: 100,
  maxReplayCount: 10,
  dedupTtlMs: 86_400_000,
  traceContext: null
})

/**
 * `ff_complete_claim` on `lane`: the completions of `done` (a set completion, each with the result
 * `{}`, each expected to succeed), then a claim of up to `limit` (of the kind `k` when `kindK`).
 */
export const completeClaim = async (
  client: pg.ClientBase,
  schema: string,
  lane: string,
  done: ReadonlyArray<Handle>,
  limit: number,
  kindK = false
): Promise<ReadonlyArray<Handle>> => {
  const r = await client.query<{ readonly r: { readonly ok: { readonly handles: ReadonlyArray<Handle>; readonly completed: ReadonlyArray<unknown> } } }>(
    `SELECT "${schema}".ff_complete_claim($1::text[], $2::int[], $3::uuid[], $4::uuid[], $5::bigint[], $6::bytea[],
       $7, '{}', ${kindK ? "ARRAY['k']" : "NULL"}, 'w', 'w-1', 60000, $8, 1048576, NULL) AS r`,
    [
      done.map((h) => h.executionId),
      done.map((h) => h.attemptIndex),
      done.map((h) => h.attemptId),
      done.map((h) => h.leaseId),
      done.map((h) => h.leaseEpoch),
      done.map(() => Buffer.from("{}")),
      lane,
      limit
    ]
  )
  const ok = r.rows[0]!.r.ok
  expect(ok.completed).toEqual(done.map(() => ({ ok: null })))
  return ok.handles
}

/** Makes the session's statistics visible to the other sessions (its next transaction flushes them). */
export const flushStats = async (client: pg.ClientBase) => {
  await client.query("SELECT pg_stat_force_next_flush()")
  await client.query("SELECT 1")
}

/** Per table of `schema`: its rows, the rows read sequentially, and the entries its indexes read. */
export const tableReads = async (client: pg.ClientBase | pg.Pool, schema: string) => {
  const r = await client.query<{ readonly name: string; readonly rows: string; readonly seq: string; readonly idx: string }>(
    `SELECT t.relname AS name, t.n_live_tup::text AS rows, t.seq_tup_read::text AS seq,
       (SELECT coalesce(sum(i.idx_tup_read), 0) FROM pg_stat_user_indexes i WHERE i.relid = t.relid)::text AS idx
       FROM pg_stat_user_tables t WHERE t.schemaname = $1`,
    [schema]
  )
  return new Map(r.rows.map((x) => [x.name, { rows: Number(x.rows), seq: Number(x.seq), idx: Number(x.idx) }]))
}
