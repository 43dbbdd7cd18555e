/**
 * Migration 0050: a small input (and a small result) kept in the `exec_core` row, `exec_data`
 * only for what is cold (docs/design/postgres.md, "Storage").
 *
 * An execution created with an input of at most `ffi_inline_bytes()` bytes and nothing else of
 * `exec_data` (no policy, no tags, no creator identity, no idempotency key, no trace context)
 * keeps its input and its encoding in `exec_core` (`payload`, `payload_encoding`) and has no
 * `exec_data` row: `exec_core.payload IS NULL` says that `exec_data` holds the input and the rest.
 * A result of at most that size is `exec_core.result`; a larger one stays `exec_data.result`
 * (a row of its own, input NULL, for an execution whose input is inline).
 *
 * The columns go last, the result before the input: an update that stays on its page logs the new
 * row version less the bytes it shares with the old one at its start and its end, so the input,
 * which no transition changes, is in the shared end of a claim's and a completion's records (and a
 * completion that sets a result logs the result only). Nullable and without a default: adding them
 * rewrites nothing, and every row stored before keeps its `exec_data` row (input NULL here), which
 * the library reads as before. An `exec_data` row holds an input or a result (a CHECK: the input
 * is no longer NOT NULL, and a create's NULL input is still refused).
 */
export const sql = String.raw`
ALTER TABLE exec_core ADD COLUMN result bytea, ADD COLUMN payload_encoding text, ADD COLUMN payload bytea;
ALTER TABLE exec_data ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE exec_data ADD CONSTRAINT exec_data_held CHECK (payload IS NOT NULL OR result IS NOT NULL);
`
