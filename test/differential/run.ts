/**
 * The interpreter's state and tools: engines and their factories, the per-run state (`Run`: what
 * earlier commands produced on this engine), running one backend call (`attempt`) and recording
 * its outcome as normalised JSON (`rec`), and the `Step` an area's interpreter gets for one command.
 */
import { createHash } from "node:crypto"
import { Cause, Clock, Duration, Effect, Either, Exit, Option, type Scope, TestServices } from "effect"
import type { EngineBackend } from "../../src/EngineBackend.js"
import type { EngineError } from "../../src/EngineError.js"
import type { BudgetId, EdgeId, ExecutionId, FlowId, WaitpointId } from "../../src/Ids.js"
import { decodeHandle } from "../../src/internal/handleCodec.js"
import type { Maintenance, PassResult } from "../../src/Maintenance.js"
import * as MemoryBackend from "../../src/MemoryBackend.js"
import type * as M from "../../src/Model.js"
import { HMAC, type Ref } from "./commands.js"
import { type Json, Normalizer } from "./normalize.js"

export interface Engine {
  readonly backend: EngineBackend.Service
  readonly maintenance: Maintenance.Service
}

/** Builds a fresh, isolated engine for one run (released with the scope). */
export interface EngineFactory {
  readonly name: string
  readonly make: Effect.Effect<Engine, unknown, Scope.Scope>
}

export const memoryFactory = (name = "memory"): EngineFactory => ({
  name,
  make: MemoryBackend.make({ hmacSecret: HMAC })
})

export interface StepRecord {
  readonly index: number
  /** The command, or `FinalSweep` for the reads after the last command. */
  readonly label: string
  readonly result: Json
  readonly reads: Json
  /** Free-text error details, for the report only (never compared). */
  readonly notes: ReadonlyArray<string>
}

export interface RunRecord {
  readonly engine: string
  readonly steps: ReadonlyArray<StepRecord>
  /** Real time spent building the engine, running the commands (with their reads), and the final sweep. */
  readonly timing: { readonly makeMs: number; readonly stepsMs: number; readonly sweepMs: number }
  /** Set when the run stopped early at the first step that differed from `reference`. */
  readonly stoppedAt?: number | undefined
  /** Set when the run stopped early because an `endRun` waiver matched (the runs agree up to there). */
  readonly endedByWaiver?: boolean | undefined
}

interface Failure {
  readonly error?: EngineError | undefined
  readonly defect?: string | undefined
}

export type Outcome<A> = Either.Either<A, Failure>

interface Pending {
  readonly executionId: ExecutionId
  readonly waitpointId: WaitpointId
  readonly waitpointKey: string
  readonly token: string
}

interface Signalable {
  readonly executionId: ExecutionId
  readonly waitpointId: WaitpointId
  readonly token: string
}

export interface StagedEdge {
  readonly flowId: FlowId
  readonly edgeId: EdgeId
  readonly upstream: ExecutionId
  readonly downstream: ExecutionId
  readonly dataPassingRef?: string | undefined
}

export interface Touched {
  readonly executions: Array<ExecutionId>
  readonly flows: Array<FlowId>
  readonly budgets: Array<BudgetId>
  all: boolean
}

/** The per-run state of the interpreter: what earlier commands produced on this engine. */
export class Run {
  readonly known = new Set<string>()
  readonly norm: Normalizer
  readonly executions: Array<ExecutionId> = []
  readonly handles: Array<M.Handle> = []
  /** Handles whose lease was released or found lost on this run (identity of the handle values). */
  readonly spent = new Set<M.Handle>()
  readonly signalable: Array<Signalable> = []
  readonly pending: Array<Pending> = []
  readonly flows: Array<FlowId> = []
  readonly members = new Map<FlowId, Array<ExecutionId>>()
  readonly edges: Array<StagedEdge> = []
  readonly budgets: Array<BudgetId> = []
  /**
   * The stored priority of each execution a `createExecutions` batch created, by batch: the items
   * share one creation time, so their priorities must stay distinct (`ChangePriority` keeps them so).
   */
  readonly batches = new Map<ExecutionId, Map<ExecutionId, number>>()
  notes: Array<string> = []

  constructor(readonly engine: Engine, readonly salt: number, base: number) {
    this.norm = new Normalizer(base, this.known)
  }

  /** A UUID derived from the salt and `parts`, registered as test-minted. */
  mint(...parts: ReadonlyArray<string | number>): string {
    const h = createHash("sha256").update(`${this.salt}|${parts.join("|")}`).digest("hex")
    const v = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${"89ab"[parseInt(h[16]!, 16) & 3]}${
      h.slice(17, 20)
    }-${h.slice(20, 32)}`
    this.known.add(v)
    return v
  }
}

export const pickRecent = <A>(list: ReadonlyArray<A>, r: Ref): A | undefined =>
  list.length === 0 ? undefined : list[list.length - 1 - (r % list.length)]

/** Refs 0–3 pick among the handles not known to be spent (when there are any), larger refs among all. */
export const pickHandle = (run: Run, r: Ref): M.Handle | undefined => {
  const live = run.handles.filter((h) => !run.spent.has(h))
  return r < 4 && live.length > 0 ? pickRecent(live, r) : pickRecent(run.handles, r)
}

const LOST: ReadonlyArray<string> = ["ExecutionNotActive", "LeaseExpired", "LeaseRevoked", "StaleLease"]

/** Marks `h` spent after an operation that released its lease, or that found it lost. */
export const settle = <A>(run: Run, h: M.Handle, o: Outcome<A>, releases: boolean): void => {
  if (Either.isRight(o) ? releases : LOST.includes(String((o.left.error as { kind?: unknown } | undefined)?.kind))) {
    run.spent.add(h)
  }
}

export const payloadOf = (h: M.Handle): M.HandlePayload | undefined => Either.getOrUndefined(decodeHandle(h.backend, h))

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

/** A backend operation that takes longer than this in real time is recorded as a hang. */
const HANG_MS = 20_000

/** Runs one backend call: its value, its typed error, or its defect; a hang (real time) is a defect. */
export const attempt = <A>(run: Run, effect: Effect.Effect<A, EngineError>): Effect.Effect<Outcome<A>> => {
  const hang = TestServices.provideLive(Effect.sleep(Duration.millis(HANG_MS))).pipe(
    Effect.zipRight(Effect.die(new Error(`no answer within ${HANG_MS} ms (real time)`)))
  )
  return Effect.exit(Effect.raceFirst(effect, hang)).pipe(
    Effect.map((exit): Outcome<A> => {
      if (Exit.isSuccess(exit)) return Either.right(exit.value)
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        const e = failure.value
        const detail = "detail" in e && typeof e.detail === "string" ? e.detail : e.message
        if (detail !== "") run.notes.push(`${e._tag}${"kind" in e ? `(${String(e.kind)})` : ""}: ${detail}`)
        return Either.left({ error: e })
      }
      const defect = Cause.pretty(exit.cause).split("\n").slice(0, 3).join(" | ")
      run.notes.push(`defect: ${defect}`)
      return Either.left({ defect })
    })
  )
}

const ERROR_FIELDS = ["kind", "entity", "notActive", "existing", "kid", "op", "pool"] as const

const normError = (run: Run, f: Failure): Json => {
  if (f.error === undefined) return { defect: f.defect ?? "unknown" }
  const e = f.error
  const picked: Record<string, unknown> = { _tag: e._tag }
  const record = e as unknown as Readonly<Record<string, unknown>>
  for (const k of ERROR_FIELDS) if (record[k] !== undefined) picked[k] = record[k]
  if (e._tag === "Transport") picked["message"] = e.message
  return { err: run.norm.value(picked, undefined) }
}

export const rec = <A>(run: Run, o: Outcome<A>, f: (a: A) => unknown = (a) => a): Json =>
  Either.isRight(o) ? { ok: run.norm.value(f(o.right), undefined) } : normError(run, o.left)

export const skip = (why: string): Json => ({ skip: why })

/** A pass result without its next due time: a hint each backend gives from its own indexes (or not at all). */
export const withoutDue = ({ nextDueAt: _, ...rest }: PassResult): Omit<PassResult, "nextDueAt"> => rest

const sortedIds = <A extends string>(ids: ReadonlyArray<A>): Array<A> => [...ids].sort()

export const sortFlow = (s: M.FlowSnapshot): M.FlowSnapshot => ({
  ...s,
  edgeGroups: [...s.edgeGroups].sort((a, b) => a.downstreamExecutionId.localeCompare(b.downstreamExecutionId))
})

export const sortCancelFlow = (r: M.CancelFlowResult): M.CancelFlowResult => {
  switch (r._tag) {
    case "Cancelled":
      return { ...r, memberExecutionIds: sortedIds(r.memberExecutionIds) }
    case "CancellationScheduled":
      return { ...r, memberExecutionIds: sortedIds(r.memberExecutionIds) }
    case "PartiallyCancelled":
      return {
        ...r,
        memberExecutionIds: sortedIds(r.memberExecutionIds),
        failedMemberExecutionIds: sortedIds(r.failedMemberExecutionIds)
      }
  }
}

export const now: Effect.Effect<number> = Clock.currentTimeMillis

const noTouch = (): Touched => ({ executions: [], flows: [], budgets: [], all: false })

export interface Stepped {
  readonly result: Json
  readonly touched: Touched
}

/**
 * What an area's interpreter (lifecycle.ts, signals.ts, flows.ts, …) gets for one command: the
 * run, its backend, the command's position `i`, and helpers that record what the command touched.
 */
export interface Step {
  readonly run: Run
  readonly b: EngineBackend.Service
  readonly i: number
  readonly touched: Touched
  readonly out: (result: Json) => Stepped
  readonly touchHandle: (h: M.Handle) => void
  readonly withHandle: (r: Ref, f: (h: M.Handle) => Effect.Effect<Json>) => Effect.Effect<Stepped>
  readonly withExecution: (r: Ref, f: (id: ExecutionId) => Effect.Effect<Json>) => Effect.Effect<Stepped>
}

export const makeStep = (run: Run, i: number): Step => {
  const b = run.engine.backend
  const touched = noTouch()
  const out = (result: Json): Stepped => ({ result, touched })
  const touchHandle = (h: M.Handle) => {
    const p = payloadOf(h)
    if (p !== undefined) touched.executions.push(p.executionId)
  }
  const withHandle = (
    r: Ref,
    f: (h: M.Handle) => Effect.Effect<Json>
  ): Effect.Effect<Stepped> => {
    const h = pickHandle(run, r)
    if (h === undefined) return Effect.succeed(out(skip("no handle")))
    touchHandle(h)
    return Effect.map(f(h), out)
  }
  const withExecution = (r: Ref, f: (id: ExecutionId) => Effect.Effect<Json>): Effect.Effect<Stepped> => {
    const id = pickRecent(run.executions, r)
    if (id === undefined) return Effect.succeed(out(skip("no execution")))
    touched.executions.push(id)
    return Effect.map(f(id), out)
  }
  return { run, b, i, touched, out, touchHandle, withHandle, withExecution }
}

export const unique = <A>(xs: ReadonlyArray<A>): Array<A> => [...new Set(xs)]
