/** The interpreter, streams: appending frames in every mode, and reading a stream back (read, tail, summary). */
import { Effect } from "effect"
import type * as Ids from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import type { Command } from "./commands.js"
import { attempt, bytes, payloadOf, rec, type Step, type Stepped } from "./run.js"

type StreamCommand = Extract<Command, { readonly _tag: "AppendFrame" | "ReadStream" }>

export const streams = (s: Step, cmd: StreamCommand): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const { b, run, withExecution, withHandle } = s
    switch (cmd._tag) {
      case "AppendFrame":
        return yield* withHandle(cmd.handle, (h) => {
          const mode: M.StreamMode = cmd.mode === "summary" ?
            { _tag: "DurableSummary", patchKind: "json-merge-patch" } :
            cmd.mode === "bestEffort" ?
            { _tag: "BestEffortLive", config: { ttlMs: 5000 } } :
            { _tag: "Durable" }
          const p = payloadOf(h)
          return Effect.map(
            attempt(run, b.appendFrame(h, { bytes: bytes(cmd.text), kind: cmd.kind, mode })),
            (r) => run.norm.withStream(p === undefined ? "" : `${p.executionId}:${p.attemptIndex}`, () => rec(run, r))
          )
        })

      case "ReadStream":
        return yield* withExecution(cmd.execution, (executionId) =>
          Effect.gen(function*() {
            const attemptIndex = cmd.attemptIndex as Ids.AttemptIndex
            const frames = yield* attempt(
              run,
              b.readStream({
                executionId,
                attemptIndex,
                from: { _tag: "Start" },
                to: { _tag: "End" },
                countLimit: cmd.countLimit
              })
            )
            const tail = yield* attempt(
              run,
              b.tailStream({
                executionId,
                attemptIndex,
                after: { _tag: "At", id: "0-0" },
                blockMs: 0,
                countLimit: cmd.countLimit,
                visibility: "exclude_best_effort"
              })
            )
            const summary = yield* attempt(run, b.readSummary({ executionId, attemptIndex }))
            return run.norm.withStream(`${executionId}:${attemptIndex}`, () => ({
              frames: rec(run, frames),
              tail: rec(run, tail),
              summary: rec(run, summary)
            }))
          }))
    }
  })
