/**
 * The Lua function library: the files of `src/valkey/lua/` concatenated in a
 * fixed order (the header with `#!lua name=flowfabric` first). Its version is
 * `<VERSION>+<sha1 of the source>`, so any change to any file reloads it.
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { Transport } from "../../EngineError.js"

/** Load order: helpers first, registration last. */
export const LUA_FILES = [
  "flowfabric.lua",
  "helpers.lua",
  "transitions.lua",
  "indexes.lua",
  "ids.lua",
  "eligible.lua",
  "lease.lua",
  "history.lua",
  "events.lua",
  "json.lua",
  "hmac.lua",
  "terminal.lua",
  "lifecycle.lua",
  "claim.lua",
  "admin.lua",
  "flow.lua",
  "suspension.lua",
  "stream.lua",
  "budget.lua",
  "maintenance.lua",
  "reads.lua",
  "register.lua"
] as const

export const LIBRARY_NAME = "flowfabric"

export interface Library {
  readonly source: string
  /** What `FCALL ff_version 0` answers when this source is loaded. */
  readonly version: string
}

const HASH_PLACEHOLDER = "__FF_SOURCE_HASH__"

/** Builds the library from the given file contents (exported for tests). */
export const assemble = (files: ReadonlyArray<string>): Library => {
  const raw = files.map((f) => (f.endsWith("\n") ? f : `${f}\n`)).join("")
  const hash = createHash("sha1").update(raw).digest("hex")
  const declared = /FF\.VERSION\s*=\s*"([^"]+)"/.exec(raw)?.[1] ?? "0"
  return { source: raw.replaceAll(HASH_PLACEHOLDER, hash), version: `${declared}+${hash}` }
}

/** Reads the `.lua` files shipped next to this module. */
export const loadLibrary: Effect.Effect<Library, Transport> = Effect.try({
  try: () =>
    assemble(LUA_FILES.map((file) => readFileSync(new URL(`../lua/${file}`, import.meta.url), "utf8"))),
  catch: (cause) =>
    new Transport({
      backend: "valkey",
      kind: "other",
      retryable: false,
      message: `cannot read the flowfabric Lua library: ${cause instanceof Error ? cause.message : String(cause)}`,
      cause
    })
})
