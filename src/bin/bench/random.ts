/**
 * Seeded pseudo-random gaps for the latency scenarios: every system of a run (ours and each peer)
 * draws the same sequence for the same round, so their samples are taken under the same pauses.
 */

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same sequence on every run. */
export const prng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` values drawn uniformly from [minMs, maxMs), rounded to whole milliseconds. */
export const uniformMs = (seed: number, n: number, minMs: number, maxMs: number): ReadonlyArray<number> => {
  const next = prng(seed)
  return Array.from({ length: n }, () => Math.round(minMs + next() * (maxMs - minMs)))
}

/** The pause before each sample of a latency scenario: 0.3–1.2 s, long enough for a worker to go idle. */
export const GAP_MIN_MS = 300
export const GAP_MAX_MS = 1200

export const gapsMs = (seed: number, n: number): ReadonlyArray<number> => uniformMs(seed, n, GAP_MIN_MS, GAP_MAX_MS)

/** Per-round seeds: round `i` of every system uses `seed + i` (the warm-up uses `seed - 1`). */
export const roundSeed = (seed: number, round: number): number => (seed + round) >>> 0
