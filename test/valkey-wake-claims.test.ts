// The claim a standalone Valkey layer sends for a waiting worker as a wake-up's message is read
// (`makeWakeClaims`): however the call ends, the worker's handoff is delivered exactly once, with
// "claim again" unless a readable reply said what it took. Over a fake connection (no server):
// the failures a live server seldom gives on cue (a dropped connection, an error reply, a reply
// that does not read, a defect while building the call).
import { describe, expect, it } from "@effect/vitest"
import { Either, Option } from "effect"
import type { EngineBackend } from "../src/EngineBackend.js"
import type * as Ids from "../src/Ids.js"
import type { Hub } from "../src/internal/wakeups.js"
import type * as M from "../src/Model.js"
import { type ClaimReplies, makeWakeClaims } from "../src/valkey/internal/claim.js"
import type { CoreContext } from "../src/valkey/internal/context.js"
import { parseError } from "../src/valkey/internal/errors.js"

const args: M.ClaimArgs = {
  lane: "wk" as Ids.LaneId,
  capabilities: { tokens: [] },
  policy: { workerId: "w", workerInstanceId: "wi", leaseTtlMs: 30_000 } as M.ClaimPolicy
}

const claimed: ReadonlyArray<EngineBackend.ClaimedWork> = [
  { handle: { backend: "valkey", kind: "fresh", opaque: new Uint8Array([1]) } as unknown as M.Handle, input: Option.none() }
]

interface Setup {
  readonly reply?: () => Promise<unknown>
  readonly read?: "ok" | "bad"
  readonly cluster?: boolean
  readonly throws?: boolean
  readonly handoff?: boolean
}

const setup = (o: Setup) => {
  const deliveries: Array<readonly [number, boolean]> = []
  const sent: Array<{ readonly fn: string; readonly base: string; readonly args: Readonly<Record<string, unknown>> }> = []
  const ctx = {
    client: { isCluster: o.cluster === true },
    settings: { clock: "store" },
    keys: { hint: (lane: string) => `p:hint:${lane}` },
    N: 4,
    rangeError: () => {
      throw new Error("no item to range-check")
    },
    callBinaryNow: (fn: string, target: { readonly base: string }, a: Readonly<Record<string, unknown>>) => {
      if (o.throws === true) throw new Error("boom")
      sent.push({ fn, base: target.base, args: a })
      return { reply: (o.reply ?? (() => Promise.resolve([1, "OK", "", "0"])))(), sent: true }
    }
  } as unknown as CoreContext
  const replies = {
    batchArgs: () => ({ lane: "wk", lease_ids: ["l"], attempt_ids: ["a"] }),
    readBatch: () =>
      o.read === "bad" ?
        Either.left(parseError("ff_complete_claim", "bad")) :
        Either.right({ claimed: [...claimed], budget: 0, status: "OK", last: "EMPTY" })
  } as unknown as ClaimReplies
  let asked = 0
  const hub = {
    handoff: (lane: string) => {
      asked++
      if (o.handoff === false || lane !== "wk") return undefined
      return {
        args,
        max: 1,
        deliver: (c, again) => void deliveries.push([c.length, again])
      } satisfies EngineBackend.Handoff
    }
  } as unknown as Hub
  const claim = makeWakeClaims(ctx, replies, hub)
  return { claim, deliveries, sent, asked: () => asked }
}

const settle = () => new Promise((resolve) => setImmediate(resolve))

describe("valkey: a wake-up's claim for a waiting worker (makeWakeClaims)", () => {
  it("a readable reply hands over what it took, without a claim again; the call goes to the lane's hint key", async () => {
    const s = setup({ read: "ok" })
    s.claim!("wk")
    expect(s.sent).toHaveLength(1)
    expect(s.sent[0]).toMatchObject({ fn: "complete_claim", base: "p:hint:wk", args: { fi: 3, fn: 0 } })
    // sent on the caller's stack, delivered in the reply's callback
    expect(s.deliveries).toEqual([])
    await settle()
    expect(s.deliveries).toEqual([[1, false]])
  })

  it("a call that fails (a dropped connection) delivers nothing taken and a claim again", async () => {
    const s = setup({ reply: () => Promise.reject(new Error("Connection is closed.")) })
    s.claim!("wk")
    await settle()
    expect(s.deliveries).toEqual([[0, true]])
  })

  it("an error reply delivers nothing taken and a claim again", async () => {
    const s = setup({ reply: () => Promise.resolve([0, "invalid_input", "x"]) })
    s.claim!("wk")
    await settle()
    expect(s.deliveries).toEqual([[0, true]])
  })

  it("a reply that does not read delivers nothing taken and a claim again", async () => {
    const s = setup({ read: "bad" })
    s.claim!("wk")
    await settle()
    expect(s.deliveries).toEqual([[0, true]])
  })

  it("a defect while building the call delivers at once", () => {
    const s = setup({ throws: true })
    s.claim!("wk")
    expect(s.deliveries).toEqual([[0, true]])
  })

  it("no worker waiting: nothing is sent", async () => {
    const s = setup({ handoff: false })
    s.claim!("wk")
    await settle()
    expect(s.asked()).toBe(1)
    expect(s.sent).toEqual([])
    expect(s.deliveries).toEqual([])
  })

  it("a cluster makes no claim at the message (the worker's hook claims)", () => {
    expect(setup({ cluster: true }).claim).toBeUndefined()
  })
})
