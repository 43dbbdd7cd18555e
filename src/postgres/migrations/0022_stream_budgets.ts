/**
 * Migration 0022: stream frames keep their payload size, so a read page is cut at its byte budget
 * without reading the frames it does not return (docs/limits.md).
 */
export const sql = String.raw`
ALTER TABLE stream_frame ADD COLUMN payload_bytes int;
`
