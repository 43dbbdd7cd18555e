// On a standalone Valkey server a create of work claimable at once nudges the idle workers of its
// lane in the same process that take no handoff (test/valkey-handoff.test.ts): their claim is
// written right behind the create on the same connection, instead of after the create's wake-up
// message (docs/worker.md, "Wake-ups, timers and cancellation"). The test holds the server in a
// script: a claim written behind the create starts while the server is still held; one made at
// the wake-up message can only start once the server has run the create, after the hold.
import { describe, expect, inject, layer } from "@effect/vitest"
import { Effect, Fiber, Option, Ref, Schedule, Schema } from "effect"
import { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import * as Producer from "../src/Producer.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import * as Worker from "../src/Worker.js"
import { testHmacSecret } from "./support/hmac.js"

const url = inject("valkeyUrl")
const keyPrefix = `nd-${process.pid}-${Date.now().toString(36)}`
const live = ValkeyBackend.layer({ hmacSecret: testHmacSecret, url, keyPrefix })

const Echo = Producer.task({
  kind: "nudge-echo",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.Struct({ text: Schema.String })
})

/**
 * Holds the server in a script of `loops` empty iterations (about half a second idle; a script's
 * `TIME` does not move while it runs, so the loop counts instead of timing); resolves with the time
 * its reply arrived.
 */
const holdServer = (loops: number) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Redis(url)),
    (r) =>
      Effect.promise(async () => {
        await r.ping()
        return r.eval("for i = 1, tonumber(ARGV[1]) do end return 1", 0, String(loops)).then(() => performance.now())
      }),
    (r) => Effect.promise(() => r.quit().catch(() => "closed"))
  )

layer(live, { excludeTestServices: true, timeout: 60_000 })("valkey, a create nudges this process's idle workers", (it) => {
  describe("the claim follows the create on the connection", () => {
    it.scoped("an idle worker's claim is written before the server has run the create", () =>
      Effect.gen(function*() {
        const backend = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`nudge-${Date.now().toString(36)}`)
        const arms = yield* Ref.make(0)
        const claims: Array<number> = []
        const watched: EngineBackend.Service = {
          ...backend,
          completeAndClaim: (items, claim) =>
            Effect.suspend(() => {
              if (items.length === 0) claims.push(performance.now())
              return backend.completeAndClaim(items, claim)
            }),
          // (no handoff: a create would claim for the worker in its own call, test/valkey-handoff.test.ts)
          subscribeWork: (args) =>
            Effect.map(backend.subscribeWork(args), ({ onHandoff: _, ...sub }) => ({
              ...sub,
              arm: Effect.tap(sub.arm, () => Ref.update(arms, (n) => n + 1))
            }))
        }
        const started = yield* Ref.make<Option.Option<string>>(Option.none())
        yield* Effect.forkScoped(
          Worker.run({
            lanes: [lane],
            handlers: [Worker.handler({
              ...Echo,
              run: (input) => Effect.as(Ref.set(started, Option.some(input.text)), input)
            })],
            idle: Schedule.spaced("1 hour"),
            gracePeriod: 0,
            workerId: "nudge"
          }).pipe(Effect.provideService(EngineBackend, watched))
        )
        // the worker waits for a wake-up once it armed after its first empty claim
        while ((yield* Ref.get(arms)) < 1) yield* Effect.sleep("5 millis")
        yield* Effect.sleep("20 millis")

        const hold = yield* Effect.fork(holdServer(50_000_000))
        // (the script reaches the server first, and holds it for far longer than this)
        yield* Effect.sleep("30 millis")
        const before = claims.length
        const submittedAt = performance.now()
        yield* Producer.submit(Echo, { text: "hi" }, { lane })
        const held = yield* Fiber.join(hold)
        while (Option.isNone(yield* Ref.get(started))) yield* Effect.sleep("5 millis")

        // the create reached the server while it was held; the claim started before the hold ended
        expect(submittedAt).toBeLessThan(held)
        const first = claims[before]
        expect(first).toBeDefined()
        expect(first!).toBeLessThan(held)
        expect(yield* Ref.get(started)).toEqual(Option.some("hi"))
      }))
  })
})
