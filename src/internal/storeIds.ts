/**
 * Ids the engine mints for itself (lease and attempt ids) come from the
 * store's generator, node:crypto, on every backend; ids a caller mints
 * (`Ids.new…`) come from Effect's `Random`, so seeded tests repeat them.
 *
 * They are random (version 4) UUIDs made from a pool of random bytes, each a
 * flat string cut from a pool of their text at once: `randomUUID`'s strings are
 * concatenations, which every later hash, comparison or write into handle
 * bytes first flattens (a copy per id and use).
 */
import { randomFillSync } from "node:crypto"
import type { AttemptId, LeaseId } from "../Ids.js"

const POOL = 256
const DIGITS = "0123456789abcdef"
/** The two hex digits of each byte value. */
const HIGH = Uint8Array.from({ length: 256 }, (_, b) => DIGITS.charCodeAt(b >> 4))
const LOW = Uint8Array.from({ length: 256 }, (_, b) => DIGITS.charCodeAt(b & 0x0f))
/** Where each of the 16 bytes goes in the text (after the hyphens before it). */
const AT = Uint8Array.from({ length: 16 }, (_, i) => 2 * i + (i >= 4 ? 1 : 0) + (i >= 6 ? 1 : 0) + (i >= 8 ? 1 : 0) + (i >= 10 ? 1 : 0))
const random = new Uint8Array(16 * POOL)
const text = Buffer.alloc(36 * POOL, 0x2d)
let next = POOL

const refill = (): void => {
  randomFillSync(random)
  for (let k = 0; k < POOL; k++) {
    const r = k * 16
    random[r + 6] = (random[r + 6]! & 0x0f) | 0x40
    random[r + 8] = (random[r + 8]! & 0x3f) | 0x80
    const t = k * 36
    for (let i = 0; i < 16; i++) {
      const b = random[r + i]!
      const at = t + AT[i]!
      text[at] = HIGH[b]!
      text[at + 1] = LOW[b]!
    }
  }
  // the random bytes are not kept once written out as text
  random.fill(0)
  next = 0
}

/** A random (version 4) UUID, canonical: lower-case, hyphenated. */
const uuid = (): string => {
  if (next === POOL) refill()
  const at = next++ * 36
  return text.toString("latin1", at, at + 36)
}

export const storeLeaseId = (): LeaseId => uuid() as LeaseId

export const storeAttemptId = (): AttemptId => uuid() as AttemptId
