// The layer's FCALL command (src/valkey/internal/fcallCommand.ts) writes the bytes iovalkey's own
// command writes for the same call, whatever its arguments, and takes the client's key prefix.
import { describe, expect, it } from "vitest"
import { Command } from "iovalkey"
import { sendFcall } from "../src/valkey/internal/fcallCommand.js"

/** A client that keeps what it was asked to send. */
const capture = (options: object = {}) => {
  const sent: Array<Command> = []
  return { sent, sender: { options, sendCommand: (c: Command) => void sent.push(c) } }
}

const bytes = (w: string | Buffer): Buffer => (typeof w === "string" ? Buffer.from(w, "utf8") : w)

/** iovalkey's own bytes for `FCALL fn numkeys ...keys ...argv` (bytes given to it as Buffers). */
const expected = (name: string, fn: string, keys: ReadonlyArray<string>, argv: ReadonlyArray<string | Uint8Array>) =>
  bytes(
    new Command(name, [
      fn,
      String(keys.length),
      ...keys,
      ...argv.map((a) => (typeof a === "string" ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength)))
    ]).toWritable({})
  )

const cases: Array<[string, ReadonlyArray<string | Uint8Array>]> = [
  ["no arguments", []],
  ["short ASCII", ["", "1733600000000", "{fp:12}:0b0a2f1e-9d5c-4c1b-8f4e-1c2d3e4f5a6b", "x"]],
  ["non-ASCII short", ["é", "日本語", "emoji 🎉", "mixed a\u0000b"]],
  ["long ASCII and long non-ASCII", ["a".repeat(97), "b".repeat(5000), "ü".repeat(200), "🎉".repeat(100) + "x".repeat(10)]],
  ["buffers", [Buffer.alloc(0), Buffer.from([0, 255, 13, 10]), Buffer.alloc(300, 7), "after"]],
  ["plain Uint8Arrays", [new Uint8Array([1, 2, 3]), new Uint8Array(500).fill(65).subarray(7, 420), new Uint8Array(0)]],
  ["views into larger memory", [Buffer.from(Uint8Array.from({ length: 400 }, (_, i) => i % 256).buffer, 3, 90), Buffer.from(new Uint8Array(400).fill(9).buffer, 100, 200)]],
  ["lone surrogate", ["\ud800", "a\udc00b".repeat(40)]],
  ["a batch", Array.from({ length: 1500 }, (_, i) => (i % 7 === 0 ? Buffer.from(`blob ${i}`) : `arg-${i}`))]
]

describe("the layer's FCALL command", () => {
  for (const [name, argv] of cases) {
    it(`writes iovalkey's bytes: ${name}`, () => {
      for (const readOnly of [false, true]) {
        const { sender, sent } = capture()
        void sendFcall(sender, "ff_fn", ["{fp:3}:k", "other"], argv, readOnly, false).catch(() => undefined)
        expect(sent).toHaveLength(1)
        const written = bytes(sent[0]!.toWritable({}))
        expect(written.equals(expected(readOnly ? "fcall_ro" : "fcall", "ff_fn", ["{fp:3}:k", "other"], argv))).toBe(true)
        // written again (a cluster's redirection sends the same command again): the same bytes
        expect(bytes(sent[0]!.toWritable({})).equals(written)).toBe(true)
      }
    })
  }

  it("prefixes the keys with the client's key prefix, as the client's own command does", () => {
    const { sender, sent } = capture({ keyPrefix: "app:" })
    void sendFcall(sender, "ff_fn", ["k1"], ["v"], false, true).catch(() => undefined)
    expect(bytes(sent[0]!.toWritable({})).toString()).toBe(
      bytes(new Command("fcall", ["ff_fn", "1", "k1", "v"], { keyPrefix: "app:" }).toWritable({})).toString()
    )
    expect(sent[0]!.getKeys()).toEqual(["app:k1"])
  })

  it("resolves with the reply as the client's own command: text, or Buffers when binary", async () => {
    for (const binary of [false, true]) {
      const { sender, sent } = capture()
      const reply = sendFcall(sender, "ff_fn", ["k"], [], false, binary)
      sent[0]!.resolve([1, Buffer.from("OK"), [Buffer.from("é")]])
      expect(await reply).toEqual(binary ? [1, Buffer.from("OK"), [Buffer.from("é")]] : [1, "OK", ["é"]])
    }
  })
})
