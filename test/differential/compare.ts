/**
 * The comparison: step by step, result then reads, as text first and path by path where they
 * differ; waivers for known divergences; the reports of a divergence and of a sequence.
 */
import type { Command, Sample } from "./commands.js"
import { type Json, stableStringify } from "./normalize.js"
import { type RunRecord, type StepRecord, unique } from "./run.js"

export const describeCommand = (c: Command): string => {
  const { _tag, ...rest } = c
  const fields = Object.entries(rest).filter(([, v]) => v !== undefined)
  return fields.length === 0 ? _tag : `${_tag} ${JSON.stringify(Object.fromEntries(fields))}`
}

/**
 * A known, reported divergence that a check may tolerate so that it can look for further ones:
 * a difference it `matches` does not count. Every use is counted and printed.
 */
export interface Waiver {
  readonly id: string
  /** What differs and which spec section decides it. */
  readonly description: string
  readonly matches: (difference: Difference, step: StepRecord) => boolean
  /**
   * `mask` (default): the matched difference does not count. `endRun`: the divergence changes
   * state that later steps would keep showing, so the comparison of this run ends here (agreeing).
   */
  readonly effect?: "mask" | "endRun" | undefined
  /** A minimal sequence that shows the divergence (see `checkWaiverRepros`). */
  readonly repro?: ReadonlyArray<Command> | undefined
}

/** How often each waiver hid a difference (across the whole process). */
export const waiverHits = new Map<string, number>()

interface StepComparison {
  /** Differences no waiver covers. */
  readonly remaining: ReadonlyArray<Difference>
  /** An `endRun` waiver matched: nothing after this step is compared. */
  readonly endRun: boolean
}

const SAME: StepComparison = { remaining: [], endRun: false }

/** Compares one step (the cheap text comparison first), applying the waivers. */
export const compareStep = (a: StepRecord, b: StepRecord, waivers: ReadonlyArray<Waiver>): StepComparison => {
  if (stableStringify(a.result) === stableStringify(b.result) && stableStringify(a.reads) === stableStringify(b.reads)) {
    return SAME
  }
  const all = [
    ...jsonDifferences(a.result, b.result, "result", 10_000),
    ...jsonDifferences(a.reads, b.reads, "reads", 10_000)
  ]
  let endRun = false
  const used = new Set<string>()
  const remaining = all.filter((d) => {
    const waiver = waivers.find((w) => w.matches(d, b))
    if (waiver === undefined) return true
    used.add(waiver.id)
    if (waiver.effect === "endRun") endRun = true
    return false
  })
  for (const id of used) waiverHits.set(id, (waiverHits.get(id) ?? 0) + 1)
  return endRun ? { remaining: [], endRun } : { remaining, endRun }
}

export interface Difference {
  readonly path: string
  readonly reference: Json | "<absent>"
  readonly candidate: Json | "<absent>"
}

export interface Divergence {
  readonly index: number
  readonly label: string
  readonly referenceEngine: string
  readonly candidateEngine: string
  readonly reference: StepRecord | undefined
  readonly candidate: StepRecord | undefined
  readonly differences: ReadonlyArray<Difference>
}

export const isObject = (v: Json): v is { readonly [key: string]: Json } =>
  v !== null && typeof v === "object" && !Array.isArray(v)

/** Paths where two JSON values differ (leaf-most), at most `limit`. */
export const jsonDifferences = (a: Json, b: Json, path = "", limit = 20): Array<Difference> => {
  const out: Array<Difference> = []
  const walk = (x: Json | "<absent>", y: Json | "<absent>", p: string) => {
    if (out.length >= limit) return
    if (x !== "<absent>" && y !== "<absent>" && stableStringify(x) === stableStringify(y)) return
    if (x !== "<absent>" && y !== "<absent>" && isObject(x) && isObject(y)) {
      for (const k of unique([...Object.keys(x), ...Object.keys(y)]).sort()) {
        walk(k in x ? x[k]! : "<absent>", k in y ? y[k]! : "<absent>", `${p}.${k}`)
      }
      return
    }
    if (x !== "<absent>" && y !== "<absent>" && Array.isArray(x) && Array.isArray(y) && x.length === y.length) {
      const xs = x as ReadonlyArray<Json>
      const ys = y as ReadonlyArray<Json>
      for (let i = 0; i < xs.length; i++) walk(xs[i]!, ys[i]!, `${p}[${i}]`)
      return
    }
    out.push({ path: p === "" ? "." : p, reference: x, candidate: y })
  }
  walk(a, b, path)
  return out
}

/** The first step where the two runs differ (result first, then the reads), or `undefined`. */
export const compare = (
  reference: RunRecord,
  candidate: RunRecord,
  waivers: ReadonlyArray<Waiver> = []
): Divergence | undefined => {
  const n = Math.max(reference.steps.length, candidate.steps.length)
  for (let i = 0; i < n; i++) {
    const a = reference.steps[i]
    const b = candidate.steps[i]
    const c = a !== undefined && b !== undefined ? compareStep(a, b, waivers) : undefined
    if (c !== undefined && c.endRun) return undefined
    if (c !== undefined && c.remaining.length === 0) continue
    const differences: ReadonlyArray<Difference> = c === undefined ?
      [{ path: ".", reference: a === undefined ? "<absent>" : "<step>", candidate: b === undefined ? "<absent>" : "<step>" }] :
      c.remaining.slice(0, 20)
    return {
      index: i,
      label: a?.label ?? b?.label ?? "?",
      referenceEngine: reference.engine,
      candidateEngine: candidate.engine,
      reference: a,
      candidate: b,
      differences
    }
  }
  return undefined
}

const show = (v: Json | "<absent>"): string => {
  const s = v === "<absent>" ? v : stableStringify(v)
  return s.length > 600 ? `${s.slice(0, 600)}…` : s
}

export const formatDivergence = (d: Divergence): string => {
  const lines = [
    `first divergence at step ${d.index}: ${d.label}`,
    `  ${d.referenceEngine} result: ${d.reference === undefined ? "<absent>" : show(d.reference.result)}`,
    `  ${d.candidateEngine} result: ${d.candidate === undefined ? "<absent>" : show(d.candidate.result)}`,
    "  differences:"
  ]
  for (const x of d.differences) {
    lines.push(`    ${x.path}`, `      ${d.referenceEngine}: ${show(x.reference)}`, `      ${d.candidateEngine}: ${show(x.candidate)}`)
  }
  const notes = (label: string, s: StepRecord | undefined) => {
    if (s !== undefined && s.notes.length > 0) lines.push(`  ${label} notes: ${s.notes.join(" ; ")}`)
  }
  notes(d.referenceEngine, d.reference)
  notes(d.candidateEngine, d.candidate)
  return lines.join("\n")
}

export const formatSample = (sample: Sample, upTo = sample.commands.length - 1): string =>
  [
    `salt ${sample.salt}`,
    ...sample.commands.slice(0, upTo + 1).map((c, i) => `  ${String(i).padStart(2)}. ${describeCommand(c)}`)
  ].join("\n")
