/**
 * The published package: `npm pack` ships the compiled modules, their declarations and the Lua
 * library, and plain Node (no TypeScript loader) can import every entry point by its package name
 * and run an execution through the memory engine.
 */
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { beforeAll, describe, expect, it } from "vitest"

const run = promisify(execFile)
const root = new URL("..", import.meta.url).pathname

const consumer = `
import { Effect, Option } from "effect"
import { EngineBackend, Ids, MemoryBackend } from "flowfabric-effect"
import { ValkeyBackend } from "flowfabric-effect/valkey"
import { PostgresBackend } from "flowfabric-effect/postgres"

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
  yield* engine.complete(handle, new TextEncoder().encode("done"))
  const info = yield* engine.readExecutionInfo(executionId)
  return Option.getOrThrow(info).publicState
})

const state = await program.pipe(Effect.provide(MemoryBackend.layer()), Effect.runPromise)
console.log(JSON.stringify({
  state,
  valkey: typeof ValkeyBackend.layer,
  postgres: typeof PostgresBackend.layerPg
}))
`

describe("the npm package", () => {
  beforeAll(async () => {
    await run("npm", ["run", "build", "--silent"], { cwd: root })
  }, 180_000)

  it("ships compiled modules, declarations and the Lua library, and neither tests nor the bench", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root })
    const files: ReadonlyArray<string> = JSON.parse(stdout)[0].files.map((f: { path: string }) => f.path)
    for (const entry of ["dist/index.js", "dist/index.d.ts", "dist/valkey/index.js", "dist/postgres/index.d.ts"]) {
      expect(files).toContain(entry)
    }
    const lua = files.filter((f) => f.startsWith("dist/valkey/lua/") && f.endsWith(".lua"))
    expect(lua).toContain("dist/valkey/lua/flowfabric.lua")
    expect(lua.length).toBeGreaterThan(10)
    const sql = files.filter((f) => f.startsWith("dist/postgres/sql/") && f.endsWith(".sql"))
    expect(sql).toContain("dist/postgres/sql/flowfabric.sql")
    expect(sql.length).toBeGreaterThan(10)
    expect(files.filter((f) => f.startsWith("test/") || f.startsWith("dist/bin/") || f.startsWith("src/bin/"))).toEqual([])
  }, 120_000)

  it("imports by package name under plain Node and runs an execution on the memory engine", async () => {
    const { stdout } = await run(process.execPath, ["--input-type=module", "--eval", consumer], { cwd: root })
    expect(JSON.parse(stdout)).toEqual({ state: "completed", valkey: "function", postgres: "function" })
  }, 120_000)
})
