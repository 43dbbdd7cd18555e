/** Running one sample on a fresh engine, step by step, optionally compared with a reference run as it goes. */
import { Effect, TestClock, TestContext, TestServices } from "effect"
import { BASE_TIME, type Sample } from "./commands.js"
import { compareStep, describeCommand, type Waiver } from "./compare.js"
import { interpret } from "./interpret.js"
import { finalSweep, readTouched } from "./reads.js"
import { type EngineFactory, Run, type RunRecord, type StepRecord } from "./run.js"

export interface RunOptions {
  /** Compare each step with this record as it is produced and stop at the first difference. */
  readonly reference?: RunRecord | undefined
  readonly waivers?: ReadonlyArray<Waiver> | undefined
}

/** Runs `sample` on a fresh engine from `factory` under a fresh `TestClock` at `BASE_TIME`. */
export const runSampleEffect = (
  factory: EngineFactory,
  sample: Sample,
  options: RunOptions = {}
): Effect.Effect<RunRecord, unknown> =>
  Effect.scoped(
    Effect.gen(function*() {
      yield* TestClock.setTime(BASE_TIME)
      const t0 = performance.now()
      const engine = yield* TestServices.provideLive(factory.make)
      const t1 = performance.now()
      const timing = (t2: number, t3: number) => ({ makeMs: t1 - t0, stepsMs: t2 - t1, sweepMs: t3 - t2 })
      const run = new Run(engine, sample.salt, BASE_TIME)
      const steps: Array<StepRecord> = []
      let endedByWaiver = false
      /** Records a step; `false` when the run should stop (diverged, or an `endRun` waiver). */
      const push = (s: StepRecord): boolean => {
        steps.push(s)
        const ref = options.reference?.steps[s.index]
        if (ref === undefined) return true
        const c = compareStep(ref, s, options.waivers ?? [])
        if (c.endRun) endedByWaiver = true
        return c.remaining.length === 0 && !c.endRun
      }
      for (let i = 0; i < sample.commands.length; i++) {
        const cmd = sample.commands[i]!
        run.notes = []
        const stepped = yield* interpret(run, cmd, i)
        const reads = cmd._tag === "Advance" ? {} : yield* readTouched(run, stepped.touched)
        if (!push({ index: i, label: describeCommand(cmd), result: stepped.result, reads, notes: run.notes })) {
          const t = performance.now()
          return { engine: factory.name, steps, stoppedAt: i, endedByWaiver, timing: timing(t, t) }
        }
      }
      const t2 = performance.now()
      run.notes = []
      const sweep = yield* finalSweep(run)
      push({ index: sample.commands.length, label: "FinalSweep", result: null, reads: sweep, notes: run.notes })
      return { engine: factory.name, steps, timing: timing(t2, performance.now()) }
    })
  ).pipe(Effect.provide(TestContext.TestContext))

export const runSample = (factory: EngineFactory, sample: Sample, options: RunOptions = {}): Promise<RunRecord> =>
  Effect.runPromise(runSampleEffect(factory, sample, options))
