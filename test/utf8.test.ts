// The hot paths' own UTF-8 (short ASCII text by a loop, anything else by TextEncoder / a fatal
// TextDecoder) gives exactly what the native codecs give, and handle bytes written by the ASCII
// pass read back the same as those of strings outside ASCII.
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import type * as Ids from "../src/Ids.js"
import { decodeHandle, encodePayload } from "../src/internal/handleCodec.js"
import { utf8Decode, utf8Encode } from "../src/internal/utf8.js"
import type * as M from "../src/Model.js"

const texts = [
  "",
  "{\"n\":1}",
  "x".repeat(96),
  "x".repeat(97),
  "é",
  `${"a".repeat(50)}ü`,
  "工人",
  "\u{1F600}",
  "\ud800 a lone surrogate",
  "a\u0000b",
  "\u007f\u0080"
]

describe("utf8", () => {
  it("encodes as TextEncoder does and decodes back", () => {
    for (const s of texts) {
      const bytes = utf8Encode(s)
      expect([...bytes]).toEqual([...new TextEncoder().encode(s)])
      expect(utf8Decode(bytes)).toBe(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
    }
  })

  it("refuses bytes that are not UTF-8, short or long, as a fatal TextDecoder does", () => {
    expect(() => utf8Decode(new Uint8Array([0x7b, 0xff, 0x7d]))).toThrow(TypeError)
    expect(() => utf8Decode(new Uint8Array([...new Array(200).fill(0x61), 0xc3]))).toThrow(TypeError)
  })

  it("handle bytes of ASCII and non-ASCII strings decode to their payload, also from a copy", () => {
    for (const workerInstanceId of ["w-1", "wörker-é", "工人-\u{1F600}", ""]) {
      const payload: M.HandlePayload = {
        executionId: "{fp:7}:0b6d6f1e-2a5c-4b8e-9c1d-3f4a5b6c7d8e" as Ids.ExecutionId,
        attemptIndex: 4_000_000_000 as Ids.AttemptIndex,
        attemptId: "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d" as Ids.AttemptId,
        leaseId: "6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a" as Ids.LeaseId,
        leaseEpoch: 2 ** 40 + 3 as Ids.LeaseEpoch,
        leaseTtlMs: 30_000,
        laneId: "lane-a" as Ids.LaneId,
        workerInstanceId: workerInstanceId as Ids.WorkerInstanceId
      }
      const bytes = encodePayload("valkey", payload)
      // a copy carries no remembered payload: it is read from its bytes
      const copy = new Uint8Array(bytes)
      const decoded = decodeHandle("valkey", { backend: "valkey", kind: "fresh", opaque: copy })
      expect(Either.getOrThrow(decoded)).toEqual(payload)
      expect(copy.length).toBe(
        3 + 4 + 8 + 8 + 5 * 4 +
          [payload.executionId, payload.attemptId, payload.leaseId, payload.laneId, workerInstanceId]
            .reduce((n, s) => n + Buffer.byteLength(s, "utf8"), 0)
      )
    }
  })
})
