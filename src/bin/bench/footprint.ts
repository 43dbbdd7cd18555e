/**
 * The `footprint` scenario: what a queued, a running, a suspended, a completed and a failed
 * execution cost the store, beside what a queued and a completed job cost the peers on the same
 * server. Three runs, each on a fresh key prefix / schema: N executions created (one lane, a
 * 30-byte JSON input, `createExecutions` in batches), claimed, then completed, suspended or
 * failed, the store read after each step. On PostgreSQL the WAL written by each step is read as
 * well (the server's WAL position, so nothing else may run on it meanwhile).
 */
import { Console, Effect, Either, type Layer, type Option } from "effect"
import { randomUUID } from "node:crypto"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { EngineBackend, type HmacSecret } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import { Limits } from "../../Limits.js"
import type { Maintenance } from "../../Maintenance.js"
import * as MemoryBackend from "../../MemoryBackend.js"
import type * as M from "../../Model.js"
import {
  type Footprint,
  pgFootprint,
  type PgProbe,
  pgProbe,
  type Relation,
  valkeyBaseline,
  type ValkeyBaseline,
  valkeyFootprint,
  type ValkeyProbe,
  valkeyProbe,
  type WalFigure
} from "./footprintStores.js"
import { footprintPeers } from "./footprintPeers.js"

/** The input of every execution and peer job: 30 bytes of JSON. */
export const INPUT_JSON = `{"to":"ana@example.com","n":1}`
const INPUT = new TextEncoder().encode(INPUT_JSON)
/** Executions (and peer jobs) per create call. */
const CREATE_BATCH = Limits.batchItems
/** Claims per claimMany and completions per completeMany. */
const CLAIM_BATCH = 500
/** Executions suspended or failed at once (these calls take one execution each). */
const CALLS_IN_FLIGHT = 16
/** Leases outlive the run: nothing expires while N executions are claimed one batch after another. */
const LEASE_TTL_MS = 6 * 3_600_000

export interface FootprintOptions {
  readonly backend: "memory" | "valkey" | "postgres"
  readonly url: Option.Option<string>
  readonly tasks: number
  readonly workers: number
  readonly peers: boolean
  readonly hmacSecret: HmacSecret
}

export interface FootprintReport {
  readonly footprints: ReadonlyArray<Footprint>
  readonly wal: ReadonlyArray<WalFigure>
}

type BackendLayer = Layer.Layer<EngineBackend | Maintenance, EngineError | unknown>

/** One run's store: a fresh key prefix / schema / engine, its readings, its removal. */
interface Store {
  readonly system: string
  readonly layer: BackendLayer
  /** Reads the baseline (after the layer is built). */
  readonly start: () => Promise<void>
  /** The growth since the baseline; `held`: bytes the bench itself holds meanwhile (the memory engine's heap). */
  readonly measure: (state: string, count: number, o: { readonly final: boolean; readonly held: number }) => Promise<Footprint>
  readonly wal: () => Promise<bigint | undefined>
  readonly cleanup: () => Promise<void>
}

interface Stores {
  readonly open: (run: number) => Promise<Store>
  readonly close: () => Promise<void>
}

const ns = Ids.unsafe.namespace("bench")
const lane = Ids.unsafe.laneId("jobs")

// ---------------------------------------------------------------------------
// the stores

/** A full garbage collection (V8's `gc`, exposed at run time). */
const gc: () => void = (() => {
  let fn: (() => void) | undefined
  return () => {
    if (fn === undefined) {
      setFlagsFromString("--expose_gc")
      fn = runInNewContext("gc") as () => void
    }
    fn()
    fn()
  }
})()

/** The JavaScript heap in use and the bytes of ArrayBuffers (held outside the heap), after a full GC. */
const heapBytes = () => {
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

const memoryStores = (secret: HmacSecret): Stores => ({
  open: async () => {
    let base = 0
    return {
      system: "flowfabric-memory",
      layer: MemoryBackend.layer({ hmacSecret: secret }),
      start: async () => {
        base = heapBytes()
      },
      measure: async (state, count, o) => ({
        system: "flowfabric-memory",
        state,
        count,
        bytes: heapBytes() - base - o.held,
        measure: "heapUsed + arrayBuffers delta after a full GC",
        records: [],
        details: []
      }),
      wal: async () => undefined,
      cleanup: async () => {}
    }
  },
  close: async () => {}
})

const valkeyStores = async (url: string, secret: HmacSecret): Promise<Stores> => {
  const { ValkeyBackend } = await import("../../valkey/index.js")
  const probe: ValkeyProbe = await valkeyProbe(url)
  return {
    open: async (run) => {
      // a prefix as short as the default "ff", so that key names cost what they cost in use
      const prefix = `f${run}`
      await probe.dropKeys(prefix)
      let base: ValkeyBaseline = { used: 0, keys: [] }
      return {
        system: "flowfabric-valkey",
        layer: ValkeyBackend.layer({ url, keyPrefix: prefix, hmacSecret: secret }),
        start: async () => {
          base = await valkeyBaseline(probe, prefix)
        },
        measure: (state, count) => valkeyFootprint(probe, prefix, base, "flowfabric-valkey", state, count),
        wal: async () => undefined,
        cleanup: () => probe.dropKeys(prefix)
      }
    },
    close: async () => probe.close()
  }
}

const postgresStores = async (url: string, secret: HmacSecret): Promise<Stores> => {
  const { PostgresBackend } = await import("../../postgres/index.js")
  const { Redacted } = await import("effect")
  const probe: PgProbe = await pgProbe(url)
  const stamp = Date.now()
  return {
    open: async (run) => {
      const schema = `fp_${stamp}_${run}`
      let base: ReadonlyArray<Relation> = []
      return {
        system: "flowfabric-postgres",
        layer: PostgresBackend.layerPg({ url: Redacted.make(url), schema, hmacSecret: secret }),
        start: async () => {
          base = await probe.relations(schema)
        },
        measure: (state, count, o) =>
          pgFootprint(probe, schema, base, "flowfabric-postgres", state, count, { live: o.final }),
        wal: () => probe.walLsn(),
        cleanup: () => probe.dropSchema(schema)
      }
    },
    close: () => probe.close()
  }
}

// ---------------------------------------------------------------------------
// the engine's runs

const createAll = (b: EngineBackend.Service, n: number) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(n / CREATE_BATCH) }, (_, i) => Math.min(CREATE_BATCH, n - i * CREATE_BATCH)),
    (count) =>
      b.createExecutions(Array.from({ length: count }, () => ({
        executionId: Ids.deterministicExecutionIdSolo(lane, randomUUID()),
        namespace: ns,
        laneId: lane,
        executionKind: "noop",
        inputPayload: INPUT
      }))),
    { concurrency: 4, discard: true }
  )

/** Claims all `n` executions of the lane (`workers` claimMany loops), keeping the handles. */
const claimAll = (b: EngineBackend.Service, n: number, workers: number) =>
  Effect.gen(function*() {
    const handles: Array<M.Handle> = []
    yield* Effect.forEach(Array.from({ length: Math.max(1, workers) }, (_, i) => i), (w) =>
      Effect.gen(function*() {
        const args: M.ClaimArgs = {
          lane,
          capabilities: { tokens: [] },
          policy: {
            workerId: Ids.unsafe.workerId(`footprint-${w}`),
            workerInstanceId: Ids.unsafe.workerInstanceId(`footprint-${w}`),
            leaseTtlMs: LEASE_TTL_MS
          }
        }
        let empty = 0
        while (handles.length < n) {
          const claimed = yield* b.claimMany(args, Math.min(CLAIM_BATCH, n - handles.length))
          if (claimed.length === 0) {
            if (++empty > 50) return
            yield* Effect.sleep("20 millis")
            continue
          }
          handles.push(...claimed)
        }
      }), { concurrency: "unbounded", discard: true })
    if (handles.length !== n) return yield* Effect.dieMessage(`footprint: claimed ${handles.length} of ${n}`)
    return handles
  })

const chunks = <A>(xs: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size))

const completeAll = (b: EngineBackend.Service, handles: ReadonlyArray<M.Handle>) =>
  Effect.forEach(chunks(handles, CLAIM_BATCH), (batch) =>
    Effect.flatMap(b.completeMany(batch.map((handle) => ({ handle }))), (outcomes) =>
      Effect.forEach(outcomes, (o) => (Either.isLeft(o) ? Effect.fail(o.left) : Effect.void), { discard: true })), {
    concurrency: 4,
    discard: true
  })

const suspendAll = (b: EngineBackend.Service, handles: ReadonlyArray<M.Handle>) =>
  Effect.forEach(handles, (h) =>
    Effect.gen(function*() {
      const wp = yield* Ids.freshWaitpointBinding
      const outcome = yield* b.suspend(h, {
        suspensionId: yield* Ids.newSuspensionId,
        waitpoints: [{ _tag: "Fresh", ...wp }],
        resumeCondition: { _tag: "Single", waitpointKey: wp.waitpointKey, matcher: { _tag: "ByName", name: "go" } }
      })
      if (outcome._tag !== "Suspended") return yield* Effect.dieMessage(`footprint: suspend gave ${outcome._tag}`)
    }), { concurrency: CALLS_IN_FLIGHT, discard: true })

const failAll = (b: EngineBackend.Service, handles: ReadonlyArray<M.Handle>) =>
  Effect.forEach(handles, (h) =>
    Effect.flatMap(
      b.fail(h, { reason: { message: "footprint" }, classification: "Permanent" }),
      (outcome) => outcome._tag === "TerminalFailed" ? Effect.void : Effect.dieMessage(`footprint: fail gave ${outcome._tag}`)
    ), { concurrency: CALLS_IN_FLIGHT, discard: true })

let kept: unknown
/** The bytes a copy of the handles takes on the heap (what the bench holds while it measures the memory engine). */
const heldBy = (handles: ReadonlyArray<M.Handle>): number => {
  const before = heapBytes()
  kept = handles.map((h) => ({ backend: h.backend, kind: h.kind, opaque: h.opaque.slice() }))
  const after = heapBytes()
  kept = undefined
  return after - before
}

type Ending = "complete" | "suspend" | "fail"
const ENDINGS: ReadonlyArray<readonly [Ending, string]> = [
  ["complete", "completed"],
  ["suspend", "suspended"],
  ["fail", "failed"]
]

/**
 * One run on a fresh store: create (waiting), claim (active), then complete, suspend or fail them all;
 * the first run also reports the waiting and active states. WAL per step on PostgreSQL.
 */
const engineRun = (store: Store, n: number, workers: number, ending: Ending, state: string, withEarlier: boolean) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const footprints: Array<Footprint> = []
    const wal: Array<WalFigure> = []
    yield* Effect.promise(() => store.start())
    const mark = () => Effect.promise(() => store.wal())
    const step = <A, E, R>(phase: string, run: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const from = yield* mark()
        const a = yield* run
        const to = yield* mark()
        if (from !== undefined && to !== undefined) {
          wal.push({ system: store.system, phase, count: n, bytes: Number(to - from), task: ending === "complete" })
        }
        return a
      })
    const measure = (s: string, final: boolean, held = 0) =>
      Effect.promise(() => store.measure(s, n, { final, held })).pipe(Effect.tap((f) => footprints.push(f)))
    yield* step("createExecutions", createAll(b, n))
    if (withEarlier) yield* measure("waiting", false)
    const handles = yield* step("claimMany", claimAll(b, n, workers))
    if (withEarlier) yield* measure("active", false, store.system === "flowfabric-memory" ? heldBy(handles) : 0)
    yield* step(
      ending === "complete" ? "completeMany" : ending,
      ending === "complete" ?
        completeAll(b, handles) :
        ending === "suspend" ?
        suspendAll(b, handles) :
        failAll(b, handles)
    )
    // the memory engine's terminal and suspended states are read without the bench's handles
    handles.length = 0
    yield* measure(state, true)
    return { footprints, wal }
  }).pipe(Effect.provide(store.layer), Effect.scoped, Effect.ensuring(Effect.promise(() => store.cleanup())))

// ---------------------------------------------------------------------------
// the scenario

export const footprint = (o: FootprintOptions): Effect.Effect<FootprintReport, unknown> =>
  Effect.gen(function*() {
    const url = o.url
    const stores: Stores = o.backend === "memory" ?
      memoryStores(o.hmacSecret) :
      o.backend === "valkey" ?
      yield* Effect.promise(() => valkeyStores(urlOr(url, "redis://127.0.0.1:6379"), o.hmacSecret)) :
      yield* Effect.promise(() => postgresStores(urlOr(url, "postgres://postgres@127.0.0.1:5432/postgres"), o.hmacSecret))
    const footprints: Array<Footprint> = []
    const wal: Array<WalFigure> = []
    yield* Effect.forEach(ENDINGS, ([ending, state], i) =>
      Effect.gen(function*() {
        const store = yield* Effect.promise(() => stores.open(i))
        yield* Console.log(`footprint: ${store.system}, ${o.tasks} executions to ${state}…`)
        const r = yield* engineRun(store, o.tasks, o.workers, ending, state, i === 0)
        footprints.push(...r.footprints)
        wal.push(...r.wal)
      }), { discard: true }).pipe(Effect.ensuring(Effect.promise(() => stores.close())))
    if (o.peers && o.backend !== "memory") {
      const peer = yield* footprintPeers(o.backend, o.url, o.tasks, o.workers, INPUT_JSON)
      footprints.push(...peer.footprints)
      wal.push(...peer.wal)
    }
    return { footprints, wal }
  })

const urlOr = (url: Option.Option<string>, fallback: string) => (url._tag === "Some" ? url.value : fallback)

// ---------------------------------------------------------------------------
// the report

const num = (x: number, digits = 0) => x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })

export const formatFootprint = (r: FootprintReport): string => {
  const lines: Array<string> = []
  const count = r.footprints[0]?.count ?? 0
  lines.push(`\nStorage footprint: ${num(count)} items each, input ${INPUT.length} B of JSON, one lane`)
  lines.push(["system".padEnd(24), "state".padEnd(10), "bytes/item".padStart(11), "live/item".padStart(10), "  measure"].join(" "))
  for (const f of r.footprints) {
    lines.push([
      f.system.padEnd(24),
      f.state.padEnd(10),
      num(f.bytes / f.count, 1).padStart(11),
      (f.liveBytes === undefined ? "" : num(f.liveBytes / f.count, 1)).padStart(10),
      `  ${f.measure}`
    ].join(" "))
  }
  const ours = r.footprints.filter((f) => f.system.startsWith("flowfabric"))
  for (const peer of r.footprints.filter((f) => !f.system.startsWith("flowfabric"))) {
    const mine = ours.find((f) => f.state === peer.state)
    if (mine === undefined) continue
    lines.push(`${mine.system} ${mine.state} ÷ ${peer.system} ${peer.state}: ${
      ((mine.bytes / mine.count) / (peer.bytes / peer.count)).toFixed(2)
    }×${
      mine.liveBytes !== undefined && peer.liveBytes !== undefined && peer.liveBytes > 0 ?
        ` (live: ${((mine.liveBytes / mine.count) / (peer.liveBytes / peer.count)).toFixed(2)}×)` :
        ""
    }`)
  }
  if (r.wal.length > 0) {
    lines.push(`\nWAL per item, by step (the server's WAL position: anything else running on it adds to these)`)
    const systems = [...new Set(r.wal.map((w) => w.system))]
    for (const s of systems) {
      const rows = r.wal.filter((w) => w.system === s)
      const task = rows.filter((w) => w.task).reduce((a, w) => a + w.bytes / w.count, 0)
      lines.push(`${s.padEnd(24)} ${num(task).padStart(6)} B per submit → claim → complete task; by step: ${
        rows.map((w) => `${w.phase} ${num(w.bytes / w.count)} B`).join(", ")
      }`)
    }
  }
  for (const f of r.footprints) {
    if (f.records.length === 0 && f.details.length === 0) continue
    lines.push(`\n${f.system}, ${f.state}: ${num(f.bytes / f.count, 1)} B per item (${f.measure})`)
    lines.push(`  ${"record".padEnd(64)} ${"items".padStart(8)} ${"bytes".padStart(12)} ${"B/item".padStart(8)}  note`)
    for (const rec of f.records) {
      lines.push(`  ${rec.record.padEnd(64)} ${String(rec.items).padStart(8)} ${String(rec.bytes).padStart(12)} ${
        num(rec.bytes / f.count, 1).padStart(8)
      }  ${rec.note ?? ""}`)
    }
    for (const d of f.details) lines.push(`  - ${d}`)
  }
  return lines.join("\n")
}
