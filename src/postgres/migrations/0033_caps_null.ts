/**
 * Migration 0033: an execution that needs no capability stores none (docs/design/postgres.md,
 * "Storage"): `required_caps` of `exec_core` and `ready` is NULL instead of an empty array (13
 * bytes in each row version). A claim takes a row whose `required_caps` is NULL, or covered by the
 * worker's capabilities; rows written before hold `'{}'`, which every worker covers too.
 */
export const sql = String.raw`
ALTER TABLE exec_core ALTER COLUMN required_caps DROP NOT NULL, ALTER COLUMN required_caps DROP DEFAULT;
ALTER TABLE ready ALTER COLUMN required_caps DROP NOT NULL, ALTER COLUMN required_caps DROP DEFAULT;
`
