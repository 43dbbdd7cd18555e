/**
 * Waitpoint tokens: `<kid>:<hex HMAC-SHA1(secret, "<waitpointId>|<waitpointKey>|<createdAtMs>")>`
 * (the canonical binding, docs/design/signals.md#tokens).
 */
import { createHmac, timingSafeEqual } from "node:crypto"

export const DIGEST_HEX_LENGTH = 40

export const signWaitpoint = (
  secretHex: string,
  waitpointId: string,
  waitpointKey: string,
  createdAt: number
): string => createHmac("sha1", Buffer.from(secretHex, "hex")).update(`${waitpointId}|${waitpointKey}|${createdAt}`).digest("hex")

export const mintToken = (
  kid: string,
  secretHex: string,
  waitpointId: string,
  waitpointKey: string,
  createdAt: number
): string => `${kid}:${signWaitpoint(secretHex, waitpointId, waitpointKey, createdAt)}`

export type TokenVerdict = "ok" | "missing_token" | "invalid_token" | "token_expired" | "hmac_secret_not_initialized"

export interface KeyLookup {
  readonly isEmpty: boolean
  readonly secret: (kid: string) => { readonly secretHex: string; readonly expiresAt: number | undefined } | undefined
}

export const verifyToken = (
  token: string,
  keys: KeyLookup,
  now: number,
  binding: { readonly waitpointId: string; readonly waitpointKey: string; readonly createdAt: number }
): TokenVerdict => {
  if (token.length === 0) return "missing_token"
  if (keys.isEmpty) return "hmac_secret_not_initialized"
  const colon = token.indexOf(":")
  if (colon <= 0 || colon === token.length - 1) return "invalid_token"
  const kid = token.slice(0, colon)
  const digest = token.slice(colon + 1)
  if (digest.length !== DIGEST_HEX_LENGTH || !/^[0-9a-f]+$/.test(digest)) return "invalid_token"
  const key = keys.secret(kid)
  if (key === undefined) return "invalid_token"
  if (key.expiresAt !== undefined && key.expiresAt < now) return "token_expired"
  const expected = signWaitpoint(key.secretHex, binding.waitpointId, binding.waitpointKey, binding.createdAt)
  return timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(digest, "hex")) ? "ok" : "invalid_token"
}

/** Two secrets (lower-case hex) compared in constant time. */
export const sameSecret = (aHex: string, bHex: string): boolean => {
  const a = Buffer.from(aHex, "hex")
  const b = Buffer.from(bHex, "hex")
  return a.length === b.length && timingSafeEqual(a, b)
}
