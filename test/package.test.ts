/**
 * The published package, as an application installs it: `npm pack` ships the compiled modules, their
 * declarations and the Lua library; the tarball, installed with npm into a fresh app, brings `effect`
 * (a peer dependency) and nothing of the server stacks, shares the app's `effect`, and each backend entry
 * point works once its driver is installed — or fails its import with a message naming the driver.
 *
 * Every scenario is one `npm install` from the npm registry into its own temporary app.
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"

const exec = promisify(execFile)
const root = new URL("..", import.meta.url).pathname
const manifest = JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as {
  readonly version: string
  readonly peerDependencies: Readonly<Record<string, string>>
  readonly devDependencies: Readonly<Record<string, string>>
}
const peer = (name: string): string => {
  const range = manifest.peerDependencies[name]
  if (range === undefined) throw new Error(`no peer dependency ${name}`)
  return range
}

/** npm and node without the npm_* variables of the `npm test` that runs this file. */
const cleanEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")))

const run = (file: string, args: ReadonlyArray<string>, cwd: string) =>
  exec(file, args, { cwd, env: cleanEnv(), maxBuffer: 64 * 1024 * 1024 })

/** Runs `node main.mjs` in `cwd`; resolves with its exit code and output. */
const node = async (cwd: string, source: string) => {
  await writeFile(path.join(cwd, "main.mjs"), source)
  try {
    const { stdout, stderr } = await run(process.execPath, ["main.mjs"], cwd)
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string }
    return { code: err.code ?? 1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" }
  }
}

let work = ""
let tarball = ""
let packedFiles: ReadonlyArray<string> = []

/** A fresh app in its own directory, with `specs` installed by one `npm install`. */
const app = async (name: string, specs: ReadonlyArray<string>): Promise<string> => {
  const dir = path.join(work, name)
  await run("mkdir", ["-p", dir], work)
  await writeFile(
    path.join(dir, "package.json"),
    JSON.stringify({ name: `ff-${name}`, version: "1.0.0", private: true, type: "module" }, null, 2)
  )
  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...specs], dir)
  return dir
}

/** Every installed package (`name@version`), from npm's hidden lockfile. */
const installed = async (dir: string): Promise<ReadonlyArray<{ readonly name: string; readonly version: string }>> => {
  const lock = JSON.parse(await readFile(path.join(dir, "node_modules", ".package-lock.json"), "utf8")) as {
    readonly packages: Readonly<Record<string, { readonly version: string }>>
  }
  return Object.entries(lock.packages).filter(([key]) => key !== "").map(([key, info]) => ({
    name: key.slice(key.lastIndexOf("node_modules/") + "node_modules/".length),
    version: info.version
  }))
}

/** The `effect` versions `npm ls` shows in the app's tree, and any copy nested below another package. */
const effectCopies = async (dir: string): Promise<ReadonlyArray<string>> => {
  const { stdout } = await run("npm", ["ls", "effect", "--all", "--json"], dir)
  interface Tree {
    readonly version?: string
    readonly dependencies?: Readonly<Record<string, Tree>>
  }
  const versions = new Set<string>()
  const walk = (tree: Tree) => {
    for (const [name, sub] of Object.entries(tree.dependencies ?? {})) {
      if (name === "effect" && sub.version !== undefined) versions.add(sub.version)
      walk(sub)
    }
  }
  walk(JSON.parse(stdout) as Tree)
  const nested = (await run("find", ["node_modules", "-path", "*/node_modules/effect/package.json"], dir)).stdout
  return [...versions, ...nested.split("\n").filter((line) => line !== "")]
}

const SERVER_STACKS = [
  "iovalkey",
  "pg",
  "@effect/sql",
  "@effect/sql-pg",
  "@effect/platform",
  "@effect/platform-node",
  "@effect/cli",
  "@effect/experimental",
  "@effect/cluster",
  "@effect/rpc",
  "@effect/workflow",
  "undici",
  "msgpackr"
]

/** An execution from create to complete on the memory engine, with a waitpoint (signed out of the box). */
const memoryProgram = `
import { Duration, Effect, Option } from "effect"
import { EngineBackend, Ids, MemoryBackend } from "flowfabric-effect"

const program = Effect.gen(function*() {
  const engine = yield* EngineBackend.EngineBackend
  const lane = Ids.unsafe.laneId("emails")
  const executionId = yield* Ids.executionIdSolo(lane)
  yield* engine.createExecution({
    executionId,
    namespace: Ids.unsafe.namespace("acme"),
    laneId: lane,
    executionKind: "send_email",
    inputPayload: new TextEncoder().encode("{}")
  })
  const claimed = yield* engine.claim({
    lane,
    capabilities: { tokens: [] },
    policy: {
      workerId: Ids.unsafe.workerId("w"),
      workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
      leaseTtlMs: 30_000
    }
  })
  const handle = Option.getOrThrow(claimed)
  const waitpoint = yield* engine.createWaitpoint(handle, { waitpointKey: "approval", expiresIn: Duration.minutes(1) })
  if (!/^[^:]+:[0-9a-f]+$/.test(waitpoint.hmacToken)) throw new Error("no token")
  yield* engine.complete(handle, { payload: new TextEncoder().encode("done") })
  const info = yield* engine.readExecutionInfo(executionId)
  return Option.getOrThrow(info).publicState
})

const state = await program.pipe(Effect.provide(MemoryBackend.layer()), Effect.runPromise)
console.log(JSON.stringify({ state }))
`

/** Imports `entry` and prints how the import ended. */
const importProgram = (entry: string) => `
try {
  const m = await import(${JSON.stringify(entry)})
  console.log(JSON.stringify({ ok: Object.keys(m) }))
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.message) }))
}
`

describe("the npm package", () => {
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "flowfabric-package-"))
    // Node resolves a bare import in every parent directory too: a node_modules above the apps
    // would lend them packages they did not install
    for (let dir = path.dirname(work); ; dir = path.dirname(dir)) {
      if (existsSync(path.join(dir, "node_modules"))) {
        throw new Error(`${path.join(dir, "node_modules")} would be seen by the test apps: remove it, or set TMPDIR elsewhere`)
      }
      if (dir === path.dirname(dir)) break
    }
    await run("npm", ["run", "build", "--silent"], root)
    const { stdout } = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], root)
    const [packed] = JSON.parse(stdout) as ReadonlyArray<{ filename: string; files: ReadonlyArray<{ path: string }> }>
    tarball = path.join(work, packed!.filename)
    packedFiles = packed!.files.map((f) => f.path)
  }, 300_000)

  afterAll(async () => {
    if (work !== "") await rm(work, { recursive: true, force: true })
  })

  it("ships compiled modules, declarations and the Lua library, and neither tests nor the bench", () => {
    for (const entry of ["dist/index.js", "dist/index.d.ts", "dist/valkey/index.js", "dist/postgres/index.d.ts"]) {
      expect(packedFiles).toContain(entry)
    }
    const lua = packedFiles.filter((f) => f.startsWith("dist/valkey/lua/") && f.endsWith(".lua"))
    expect(lua).toContain("dist/valkey/lua/flowfabric.lua")
    expect(lua.length).toBeGreaterThan(10)
    const sql = packedFiles.filter((f) => f.startsWith("dist/postgres/sql/") && f.endsWith(".sql"))
    expect(sql).toContain("dist/postgres/sql/flowfabric.sql")
    expect(sql.length).toBeGreaterThan(10)
    expect(packedFiles.filter((f) => f.startsWith("test/") || f.startsWith("dist/bin/") || f.startsWith("src/bin/")))
      .toEqual([])
  })

  it("declares effect and the drivers as peers, the drivers optional", () => {
    expect(Object.keys(manifest.peerDependencies).sort()).toEqual(["@effect/sql", "@effect/sql-pg", "effect", "iovalkey"])
    expect((manifest as { dependencies?: unknown }).dependencies).toBeUndefined()
  })

  it("a memory-only app gets effect and this package, nothing of the server stacks, and runs", async () => {
    const dir = await app("memory", [tarball])
    const packages = await installed(dir)
    const names = packages.map((p) => p.name)
    expect(names).toContain("flowfabric-effect")
    expect(names).toContain("effect")
    expect(names.filter((n) => SERVER_STACKS.includes(n) || n.startsWith("@effect/"))).toEqual([])
    // everything else is effect's own dependencies
    const effectDeps = Object.keys(
      (JSON.parse(await readFile(path.join(dir, "node_modules/effect/package.json"), "utf8")) as {
        dependencies?: Record<string, string>
      }).dependencies ?? {}
    )
    const others = names.filter((n) => n !== "flowfabric-effect" && n !== "effect" && !effectDeps.includes(n))
    // fast-check's own dependency (pure-rand) is the only one allowed beyond effect's direct ones
    expect(others.filter((n) => n !== "pure-rand")).toEqual([])
    expect(await effectCopies(dir)).toHaveLength(1)

    // the footprint stated in the README
    const du = (await run("du", ["-sk", "node_modules"], dir)).stdout
    const mb = Number(du.split(/\s/)[0]) / 1024
    console.log(`[package] memory-only app: ${packages.length} packages, ${mb.toFixed(1)} MB in node_modules`)
    expect(packages.length).toBeLessThanOrEqual(6)
    expect(mb).toBeLessThan(60)

    expect(await node(dir, memoryProgram)).toMatchObject({ code: 0, stdout: `${JSON.stringify({ state: "completed" })}\n` })

    // the backend entry points name their missing drivers
    const valkey = await node(dir, importProgram("flowfabric-effect/valkey"))
    expect(JSON.parse(valkey.stdout).error).toContain(`needs the package iovalkey, which is not installed`)
    expect(JSON.parse(valkey.stdout).error).toContain(`npm install iovalkey@${peer("iovalkey")}`)
    const postgres = await node(dir, importProgram("flowfabric-effect/postgres"))
    expect(JSON.parse(postgres.stdout).error).toContain("needs the package @effect/sql")
    expect(JSON.parse(postgres.stdout).error).toContain(
      `npm install @effect/sql-pg@${peer("@effect/sql-pg")} @effect/sql@${peer("@effect/sql")}`
    )
  }, 300_000)

  it("an app on another effect 3 version in the peer range shares its one copy", async () => {
    const lowest = peer("effect").replace(/^\^/, "")
    expect(lowest).not.toBe(JSON.parse(await readFile(path.join(root, "node_modules/effect/package.json"), "utf8")).version)
    const dir = await app("pinned-effect", [`effect@${lowest}`, tarball])
    expect(await effectCopies(dir)).toEqual([lowest])
    expect(await node(dir, memoryProgram)).toMatchObject({ code: 0, stdout: `${JSON.stringify({ state: "completed" })}\n` })
  }, 300_000)

  it("flowfabric-effect/valkey works once iovalkey is installed", async () => {
    const dir = await app("valkey", [tarball, `iovalkey@${peer("iovalkey")}`])
    expect(await effectCopies(dir)).toHaveLength(1)
    const keyPrefix = `pkg-${process.pid}-${Date.now().toString(36)}`
    const r = await node(
      dir,
      `
import { Effect, Redacted } from "effect"
import { EngineBackend } from "flowfabric-effect"
import { ValkeyBackend } from "flowfabric-effect/valkey"

const hmacSecret = { kid: "pkg", secretHex: Redacted.make("7f3a9c1e5b2d4f60".repeat(4)) }

const program = Effect.gen(function*() {
  const engine = yield* EngineBackend.EngineBackend
  yield* engine.ping()
  return (yield* engine.listLanes({ limit: 10 })).lanes
})
const lanes = await program.pipe(
  Effect.provide(ValkeyBackend.layer({
    url: ${JSON.stringify(inject("valkeyUrl"))},
    keyPrefix: "${keyPrefix}",
    lanes: ["pkg"],
    hmacSecret
  })),
  Effect.runPromise
)
console.log(JSON.stringify({ lanes }))
`
    )
    expect(r).toMatchObject({ code: 0, stdout: `${JSON.stringify({ lanes: ["pkg"] })}\n` })
  }, 300_000)

  it("flowfabric-effect/postgres works once @effect/sql-pg is installed", async () => {
    const dir = await app("postgres", [tarball, `@effect/sql-pg@${peer("@effect/sql-pg")}`, `@effect/sql@${peer("@effect/sql")}`])
    expect(await effectCopies(dir)).toHaveLength(1)
    const schema = `pkg_${process.pid}_${Date.now().toString(36)}`
    const r = await node(
      dir,
      `
import { Effect, Redacted } from "effect"
import { PgClient } from "@effect/sql-pg"
import { EngineBackend } from "flowfabric-effect"
import { PostgresBackend } from "flowfabric-effect/postgres"

const url = Redacted.make(${JSON.stringify(inject("pgUrl"))})
const hmacSecret = { kid: "pkg", secretHex: Redacted.make("7f3a9c1e5b2d4f60".repeat(4)) }
const program = Effect.gen(function*() {
  const engine = yield* EngineBackend.EngineBackend
  yield* engine.ping()
  return (yield* engine.listLanes({ limit: 10 })).lanes
})
const lanes = await program.pipe(
  Effect.provide(PostgresBackend.layerPg({ url, schema: "${schema}", hmacSecret })),
  Effect.runPromise
)
const drop = Effect.gen(function*() {
  const sql = yield* PgClient.PgClient
  yield* sql.unsafe("DROP SCHEMA ${schema} CASCADE")
})
await drop.pipe(Effect.provide(PgClient.layer({ url })), Effect.runPromise)
console.log(JSON.stringify({ lanes }))
`
    )
    expect(r).toMatchObject({ code: 0, stdout: `${JSON.stringify({ lanes: [] })}\n` })
  }, 300_000)
})
