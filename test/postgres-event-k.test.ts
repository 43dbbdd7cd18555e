// Every statement of the Postgres library that changes a column an event reports also sets the
// row's event_k (docs/design/events.md, "Postgres"): since migration 0053 no row trigger sets it,
// and an event written with an older transaction's k could sort before events a lane follower has
// already read. A static check over src/postgres/sql: each `UPDATE exec_core … SET …` whose SET
// list assigns a reported column assigns event_k too.
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"

const SQL_DIR = path.join(__dirname, "..", "src", "postgres", "sql")

/** The columns whose change the update trigger turns into an event (its WHERE). */
const REPORTED = ["public_state", "ownership_state", "lease_epoch", "attempt_state", "progress_updated_at", "flow_id"]

interface Update {
  readonly file: string
  readonly line: number
  readonly set: string
}

/** The SET list of each `UPDATE exec_core` of a text: from SET to its statement's first WHERE, FROM or RETURNING. */
const exec_core_updates = (file: string, text: string): ReadonlyArray<Update> => {
  const out: Array<Update> = []
  const code = text.replace(/--[^\n]*/g, (comment) => " ".repeat(comment.length))
  const re = /\bUPDATE\s+exec_core\b[^;]*?\bSET\b([^;]*?)(?=\bWHERE\b|\bFROM\b|\bRETURNING\b|;)/gi
  for (const m of code.matchAll(re)) {
    out.push({ file, line: code.slice(0, m.index).split("\n").length, set: m[1] ?? "" })
  }
  return out
}

const assigns = (set: string, column: string) => new RegExp(`(^|[\\s,.])${column}\\s*=`, "i").test(set)

const missing = (updates: ReadonlyArray<Update>) =>
  updates
    .filter((u) => REPORTED.some((c) => assigns(u.set, c)) && !assigns(u.set, "event_k"))
    .map((u) => `${u.file}:${u.line}`)

describe("postgres library: event_k set with every reported change", () => {
  const files = readdirSync(SQL_DIR).filter((f) => f.endsWith(".sql"))
  const updates = files.flatMap((f) => exec_core_updates(f, readFileSync(path.join(SQL_DIR, f), "utf8")))

  it("finds the library's updates of exec_core", () => {
    // the check reads what it should: the state changes of the claim, the completions, the
    // failures, the cancellations, the flows and the signals
    expect(updates.filter((u) => REPORTED.some((c) => assigns(u.set, c))).length).toBeGreaterThan(20)
  })

  it("each update that assigns a reported column assigns event_k", () => {
    expect(missing(updates)).toEqual([])
  })

  it("the check flags an update that does not", () => {
    const text = "UPDATE exec_core c SET lifecycle_phase = 'terminal', public_state = 'completed'\n  WHERE c.e_uuid = u;"
    expect(missing(exec_core_updates("x.sql", text))).toEqual(["x.sql:1"])
    const fine = "UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k), public_state = 'completed' WHERE x;"
    expect(missing(exec_core_updates("x.sql", fine))).toEqual([])
  })
})
