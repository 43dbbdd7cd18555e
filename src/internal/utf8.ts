/**
 * UTF-8 text to bytes and back, with a fast path for the short ASCII text the hot paths carry (ids,
 * small JSON documents): `TextEncoder.encode` and a fatal `TextDecoder` cross into native code
 * for every call, which costs 100–300 ns even for a few bytes; a loop over a short ASCII string
 * costs a fraction of that. Anything longer, or with a byte or character outside ASCII, takes the
 * native path, so the results are always those of `TextEncoder` / a fatal `TextDecoder`.
 */

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** Up to this many characters (bytes) the loop is quicker than the native call. */
const SHORT = 96

/** The UTF-8 bytes of `s` (what `TextEncoder.encode` returns). */
export const utf8Encode = (s: string): Uint8Array => {
  const n = s.length
  if (n > SHORT) return encoder.encode(s)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 0x7f) return encoder.encode(s)
    out[i] = c
  }
  return out
}

/** The text of UTF-8 `bytes`; throws a `TypeError` on bytes that are not UTF-8 (a fatal `TextDecoder`). */
export const utf8Decode = (bytes: Uint8Array): string => {
  const n = bytes.length
  if (n > SHORT) return decoder.decode(bytes)
  for (let i = 0; i < n; i++) if (bytes[i]! > 0x7f) return decoder.decode(bytes)
  return String.fromCharCode.apply(null, bytes as unknown as Array<number>)
}

/**
 * Writes `s` as UTF-8 into `out` at `at` when it is ASCII (one byte per character), returning the
 * bytes written, or -1 (nothing written that matters) when it is not.
 */
export const writeAscii = (out: Uint8Array, at: number, s: string): number => {
  const n = s.length
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 0x7f) return -1
    out[at + i] = c
  }
  return n
}
