/**
 * Migration 0030: `exec_core_by_partition` goes (docs/design/postgres.md, "Storage").
 *
 * Its only reader was `listExecutions` (a partition's executions by id). Every execution id begins
 * with its partition's tag `{fp:N}:`, and ids compare byte by byte (`COLLATE "C"`), so the ids of
 * partition N are the range `['{fp:N}:', '{fp:N};')` of `exec_core_pkey`, in the same order: the
 * listing reads that range instead, and a create writes one index entry less.
 */
export const sql = String.raw`
DROP INDEX exec_core_by_partition;
`
