/**
 * Migration 0057: one claim index, by lane and kind (docs/design/postgres.md, "Storage" and
 * "Claims").
 *
 * `exec_core_claim_order (lane_id, priority DESC, created_at)` goes; `exec_core_claim_by_kind
 * (lane_id, execution_kind, priority DESC, created_at)`, partial on the same column (0046), serves
 * both claims. Each claimable row had an entry in both, about 84 bytes of WAL each at every create
 * (and every return to claimable: a retry, a reclaim, a resume). A claim that names its kinds reads
 * that index as before; a claim that names none reads the kinds of its lane that have claimable
 * executions from the same index (one descent per kind), then each kind's window in claim order,
 * and merges them (the library's `ffi_claim_window`).
 */
export const sql = String.raw`
DROP INDEX exec_core_claim_order;
`
