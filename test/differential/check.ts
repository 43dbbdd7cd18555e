/**
 * The property: `checkDifferential` runs random samples on two engines with `FastCheck` (seeded,
 * the seed printed), tallies the coverage, and on failure throws a report with the shrunk
 * sequence and the first divergence; replays of a printed sample; waiver repro checks.
 */
import { FastCheck as fc } from "effect"
import type { Sample } from "./commands.js"
import { compare, type Divergence, formatDivergence, formatSample, isObject, type Waiver, waiverHits } from "./compare.js"
import type { Json } from "./normalize.js"
import { type Profile, sampleArbitrary } from "./profiles.js"
import type { EngineFactory, RunRecord } from "./run.js"
import { runSample } from "./runner.js"

export interface CheckOptions {
  readonly reference: EngineFactory
  readonly candidate: EngineFactory
  /** Overridden by `FLOWFABRIC_DIFF_RUNS` (default 30). */
  readonly numRuns?: number | undefined
  readonly maxCommands?: number | undefined
  /** Default: `FLOWFABRIC_DIFF_SEED`, else a random seed (always printed). */
  readonly seed?: number | undefined
  /** fast-check replay path (with the seed of a failing run). Default: `FLOWFABRIC_DIFF_PATH`. */
  readonly path?: string | undefined
  /** Wall-clock budget of the whole check, shrinking included (runs past it are skipped). */
  readonly timeLimitMs?: number | undefined
  readonly log?: ((line: string) => void) | undefined
  /**
   * Known divergences to tolerate (see `Waiver`). Ignored when `FLOWFABRIC_DIFF_STRICT=1`, so a
   * strict run shows every divergence, the waived ones included.
   */
  readonly waivers?: ReadonlyArray<Waiver> | undefined
  /** The sequences generated (default `general`, see `sampleArbitrary`). */
  readonly profile?: Profile | undefined
}

export interface CheckResult {
  readonly seed: number
  readonly numRuns: number
  readonly interrupted: boolean
  readonly elapsedMs: number
  /** Per command tag: how many succeeded / returned `None` / failed / were skipped (reference runs). */
  readonly coverage: Readonly<Record<string, { ok: number; none: number; err: number; skip: number }>>
  /** Per command tag and error (`_tag(kind)`): how often the reference engine failed so. */
  readonly errors: Readonly<Record<string, number>>
}

const envNumber = (name: string): number | undefined => {
  const v = process.env[name]
  return v === undefined || v === "" ? undefined : Number(v)
}

/** Tallies ok / error / skip per command tag of one run (the `.ok`/`.err`/`.skip` of each result). */
const tally = (
  coverage: Record<string, { ok: number; none: number; err: number; skip: number }>,
  errors: Record<string, number>,
  sample: Sample,
  record: RunRecord
): void => {
  for (const s of record.steps) {
    const cmd = sample.commands[s.index]
    if (cmd === undefined) continue
    const c = (coverage[cmd._tag] ??= { ok: 0, none: 0, err: 0, skip: 0 })
    const r = s.result
    const results: ReadonlyArray<Json> = isObject(r) && !("ok" in r) && !("err" in r) && !("skip" in r) ?
      Object.values(r) :
      [r]
    for (const x of results) {
      if (isObject(x) && "skip" in x) c.skip++
      else if (isObject(x) && "ok" in x && x["ok"] === "None") c.none++
      else if (isObject(x) && "ok" in x) c.ok++
      else {
        c.err++
        const e = isObject(x) && isObject(x["err"] ?? null) ? x["err"] as { readonly [key: string]: Json } : undefined
        const key = `${cmd._tag}: ${
          e === undefined ? "defect" : `${String(e["_tag"])}${e["kind"] === undefined ? "" : `(${String(e["kind"])})`}`
        }`
        errors[key] = (errors[key] ?? 0) + 1
      }
    }
  }
}

export const formatCoverage = (coverage: CheckResult["coverage"]): string =>
  Object.entries(coverage)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([tag, c]) => `${tag} ${c.ok}/${c.none}/${c.err}/${c.skip}`)
    .join(", ")

/** Re-runs `sample` on both engines (full runs, no early stop) and returns the divergence. */
export const diffSample = async (
  reference: EngineFactory,
  candidate: EngineFactory,
  sample: Sample
): Promise<Divergence | undefined> => {
  const a = await runSample(reference, sample)
  const b = await runSample(candidate, sample)
  return compare(a, b)
}

/**
 * The test timeout of a check whose own time limit is `ms`: `FLOWFABRIC_DIFF_TIME_MS` (a longer
 * seed loop) raises it to that limit plus a minute for the last run and the shrinking.
 */
export const diffTestTimeout = (ms: number): number => {
  const limit = envNumber("FLOWFABRIC_DIFF_TIME_MS")
  return limit === undefined ? ms : Math.max(ms, limit + 60_000)
}

/**
 * Runs `numRuns` random samples on both engines and throws a report (seed, replay path, minimal
 * sequence, first divergence) when any sample makes them disagree.
 *
 * Environment: `FLOWFABRIC_DIFF_SEED`, `FLOWFABRIC_DIFF_PATH` (replay a fast-check run),
 * `FLOWFABRIC_DIFF_RUNS`, `FLOWFABRIC_DIFF_COMMANDS` (the longest sequence, default `maxCommands`),
 * `FLOWFABRIC_DIFF_TIME_MS` (the time limit, default `timeLimitMs`; see `diffTestTimeout`),
 * `FLOWFABRIC_DIFF_STRICT=1` (no waivers), `FLOWFABRIC_DIFF_VERBOSE=1`
 * (error tallies), `FLOWFABRIC_DIFF_REPLAY` (a sample printed by a failing check, as JSON or
 * `@file`: runs just that sample, without shrinking).
 */
export const checkDifferential = async (o: CheckOptions): Promise<CheckResult> => {
  const began = performance.now()
  const log = o.log ?? ((line: string) => console.log(line))
  const replay = process.env["FLOWFABRIC_DIFF_REPLAY"]
  if (replay !== undefined && replay !== "") return replaySample(o, replay, log)
  const seed = o.seed ?? envNumber("FLOWFABRIC_DIFF_SEED") ?? (Math.random() * 0x7fffffff) | 0
  const path = o.path ?? process.env["FLOWFABRIC_DIFF_PATH"]
  const numRuns = envNumber("FLOWFABRIC_DIFF_RUNS") ?? o.numRuns ?? 30
  const maxCommands = envNumber("FLOWFABRIC_DIFF_COMMANDS") ?? o.maxCommands
  const timeLimitMs = envNumber("FLOWFABRIC_DIFF_TIME_MS") ?? o.timeLimitMs
  const label = `${o.reference.name} vs ${o.candidate.name}`
  const waivers = process.env["FLOWFABRIC_DIFF_STRICT"] === "1" ? [] : (o.waivers ?? [])
  log(
    `[differential] ${label}: seed=${seed} runs=${numRuns} commands<=${maxCommands ?? 40}` +
      `${path === undefined ? "" : ` path=${path}`}` +
      (waivers.length === 0 ? "" : ` waivers=${waivers.map((x) => x.id).join(",")}`)
  )
  waiverHits.clear()
  const reportWaivers = () => {
    for (const x of waivers) {
      const hits = waiverHits.get(x.id) ?? 0
      if (hits > 0) log(`[differential] ${label}: waived ${hits}× ${x.id}: ${x.description}`)
    }
  }
  const coverage: Record<string, { ok: number; none: number; err: number; skip: number }> = {}
  const errors: Record<string, number> = {}
  const timings = { runs: 0, reference: 0, make: 0, steps: 0, sweep: 0, cut: 0, commands: 0, compared: 0 }

  const property = fc.asyncProperty(sampleArbitrary({ maxCommands, profile: o.profile }), async (sample) => {
    const a = await runSample(o.reference, sample)
    const b = await runSample(o.candidate, sample, { reference: a, waivers })
    tally(coverage, errors, sample, a)
    timings.runs++
    timings.reference += a.timing.makeMs + a.timing.stepsMs + a.timing.sweepMs
    timings.make += b.timing.makeMs
    timings.steps += b.timing.stepsMs
    timings.sweep += b.timing.sweepMs
    timings.commands += sample.commands.length
    timings.compared += b.endedByWaiver === true ? b.stoppedAt ?? 0 : sample.commands.length
    if (b.endedByWaiver === true) timings.cut++
    const d = compare(a, b, waivers)
    if (d !== undefined) throw new DivergenceError(d)
  })
  const details = await fc.check(property, {
    seed,
    numRuns,
    ...(path === undefined ? {} : { path }),
    ...(timeLimitMs === undefined ? {} : { interruptAfterTimeLimit: timeLimitMs })
  })
  const elapsedMs = Math.round(performance.now() - began)
  if (!details.failed) {
    log(`[differential] ${label}: ${details.numRuns} runs agree in ${elapsedMs} ms${details.interrupted ? " (time limit hit)" : ""}`)
    log(`[differential] ${label}: coverage ok/none/err/skip: ${formatCoverage(coverage)}`)
    if (process.env["FLOWFABRIC_DIFF_VERBOSE"] === "1") {
      log(`[differential] ${label}: errors: ${
        Object.entries(errors).sort(([x], [y]) => x.localeCompare(y)).map(([k, n]) => `${k} ×${n}`).join(", ")
      }`)
    }
    const avg = (ms: number) => Math.round(ms / Math.max(1, timings.runs))
    if (timings.cut > 0) {
      log(
        `[differential] ${label}: ${timings.cut} runs ended early at an endRun waiver; ` +
          `${timings.compared} of ${timings.commands} commands compared`
      )
    }
    log(
      `[differential] ${label}: mean per run: ${o.reference.name} ${avg(timings.reference)} ms; ${o.candidate.name} ` +
        `make ${avg(timings.make)} ms, commands ${avg(timings.steps)} ms, sweep ${avg(timings.sweep)} ms`
    )
    reportWaivers()
    return { seed, numRuns: details.numRuns, interrupted: details.interrupted, elapsedMs, coverage, errors }
  }
  const sample = details.counterexample?.[0]
  const error = details.errorInstance
  const divergence = error instanceof DivergenceError ? error.divergence : undefined
  const report = [
    `[differential] ${label}: the engines disagree (seed=${seed}, path=${details.counterexamplePath ?? "?"}, ` +
    `after ${details.numRuns} runs and ${details.numShrinks} shrinks, ${elapsedMs} ms)`,
    `replay: FLOWFABRIC_DIFF_SEED=${seed} FLOWFABRIC_DIFF_PATH=${details.counterexamplePath ?? ""}`,
    ...(sample === undefined ? [] : [
      "minimal sequence (up to the divergence):",
      formatSample(sample, divergence?.index ?? sample.commands.length - 1),
      `as JSON (FLOWFABRIC_DIFF_REPLAY): ${
        JSON.stringify({
          salt: sample.salt,
          commands: sample.commands.slice(0, (divergence?.index ?? sample.commands.length - 1) + 1)
        })
      }`
    ]),
    divergence === undefined ? `error: ${String(error ?? details.error)}` : formatDivergence(divergence)
  ].join("\n")
  log(report)
  reportWaivers()
  throw new Error(report)
}

export class DivergenceError extends Error {
  constructor(readonly divergence: Divergence) {
    super(formatDivergence(divergence))
  }
}

/** Parses a sample printed by a failing check (`as JSON …`). */
export const parseSample = (json: string): Sample => JSON.parse(json) as Sample

const replaySample = async (
  o: CheckOptions,
  source: string,
  log: (line: string) => void
): Promise<CheckResult> => {
  const began = performance.now()
  const { readFileSync } = await import("node:fs")
  const sample = parseSample(source.startsWith("@") ? readFileSync(source.slice(1), "utf8") : source)
  const waivers = process.env["FLOWFABRIC_DIFF_STRICT"] === "1" ? [] : (o.waivers ?? [])
  const label = `${o.reference.name} vs ${o.candidate.name}`
  log(`[differential] ${label}: replaying one sample (${sample.commands.length} commands)`)
  const a = await runSample(o.reference, sample)
  const b = await runSample(o.candidate, sample)
  const d = compare(a, b, waivers)
  const elapsedMs = Math.round(performance.now() - began)
  if (d !== undefined) {
    const report = [`[differential] ${label}: the engines disagree on the replayed sample`, formatSample(sample, d.index), formatDivergence(d)]
      .join("\n")
    log(report)
    throw new Error(report)
  }
  log(`[differential] ${label}: the replayed sample agrees (${elapsedMs} ms)`)
  return { seed: 0, numRuns: 1, interrupted: false, elapsedMs, coverage: {}, errors: {} }
}

export interface WaiverCheck {
  readonly id: string
  /** The repro still diverges once this waiver is removed (the others stay applied). */
  readonly stillDiverges: boolean
  readonly divergence?: Divergence | undefined
}

/**
 * Replays every waiver's `repro` with all the *other* waivers applied: a waiver whose repro agrees
 * is stale (the backend or the reference was fixed) and should be deleted.
 */
export const checkWaiverRepros = async (
  reference: EngineFactory,
  candidate: EngineFactory,
  waivers: ReadonlyArray<Waiver>
): Promise<ReadonlyArray<WaiverCheck>> => {
  const out: Array<WaiverCheck> = []
  for (const w of waivers) {
    if (w.repro === undefined) continue
    const sample: Sample = { salt: 0, commands: w.repro }
    const a = await runSample(reference, sample)
    const b = await runSample(candidate, sample)
    const d = compare(a, b, waivers.filter((x) => x !== w))
    out.push({ id: w.id, stillDiverges: d !== undefined, divergence: d })
  }
  return out
}
