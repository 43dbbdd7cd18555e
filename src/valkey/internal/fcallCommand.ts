/**
 * An FCALL as a client command, written by this layer. iovalkey's own command (`connection.fcall(…)`)
 * copies its arguments three times (the rest parameter, a `flat()`, the RESP text) and its `flat()`
 * walks every argument generically: with a batch's thousands of ARGV entries that cost more
 * than the rest of the command. This command keeps the function's name and keys as the client's
 * arguments (its key prefix, its cluster slot, its error messages read them) and writes the
 * ARGV entries behind them itself.
 */
import { writeAscii } from "../../internal/utf8.js"
import { Command } from "./driver.js"

/** What the command reads of the client's options (a `Redis`'s or a `Cluster`'s). */
interface ClientOptions {
  readonly keyPrefix?: string | undefined
  readonly showFriendlyErrorStack?: boolean | undefined
}

class FcallCommand extends Command {
  private readonly argv: ReadonlyArray<string | Uint8Array>
  constructor(
    name: "fcall" | "fcall_ro",
    head: Array<string>,
    argv: ReadonlyArray<string | Uint8Array>,
    binary: boolean,
    options: ClientOptions
  ) {
    super(name, head, {
      replyEncoding: binary ? null : "utf8",
      ...(options.showFriendlyErrorStack === true ? { errorStack: new Error() } : {}),
      ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix })
    })
    this.argv = argv
  }

  /**
   * The command in RESP, written into one buffer: a short ASCII string (ids, numbers, names) and
   * short bytes by a loop, where a native call per argument (a UTF-8 length, a write, a copy)
   * costs more; longer or other text by Node's UTF-8 writer, longer bytes by a copy.
   */
  override toWritable(): Buffer {
    const head = this.args as ReadonlyArray<string | Uint8Array>
    const argv = this.argv
    const count = head.length + argv.length
    // a bound of the bytes: a UTF-16 unit is at most 3 bytes of UTF-8, a header at most 20
    let bound = 48 + this.name.length
    for (let i = 0; i < count; i++) {
      const arg = i < head.length ? head[i]! : argv[i - head.length]!
      bound += 20 + (typeof arg === "string" ? 3 * arg.length : arg.length)
    }
    const out = Buffer.allocUnsafe(bound)
    out[0] = 0x2a // *
    let at = crlf(out, decimal(out, 1, 1 + count))
    at = writeString(out, at, this.name)
    for (let i = 0; i < count; i++) {
      const arg = i < head.length ? head[i]! : argv[i - head.length]!
      if (typeof arg === "string") {
        at = writeString(out, at, arg)
      } else {
        at = bulkHeader(out, at, arg.length)
        if (arg.length <= SHORT) {
          for (let j = 0; j < arg.length; j++) out[at + j] = arg[j]!
          at += arg.length
        } else {
          out.set(arg, at)
          at += arg.length
        }
        at = crlf(out, at)
      }
    }
    return out.subarray(0, at)
  }
}

/** Up to this many characters (bytes) a string is tried as ASCII, and a buffer copied, by a loop (see `toWritable`). */
const SHORT = 96

/** `n` (a non-negative integer) in decimal at `at`; the offset after it. */
const decimal = (out: Buffer, at: number, n: number): number => {
  if (n < 10) {
    out[at] = 48 + n
    return at + 1
  }
  let digits = 1
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++
  for (let i = digits - 1, m = n; i >= 0; i--, m = Math.floor(m / 10)) out[at + i] = 48 + (m % 10)
  return at + digits
}

const crlf = (out: Buffer, at: number): number => {
  out[at] = 0x0d
  out[at + 1] = 0x0a
  return at + 2
}

/** `$<n>\r\n` at `at`; the offset after it. */
const bulkHeader = (out: Buffer, at: number, n: number): number => {
  out[at] = 0x24 // $
  return crlf(out, decimal(out, at + 1, n))
}

/** `s` as a bulk string at `at`; the offset after it. */
const writeString = (out: Buffer, at: number, s: string): number => {
  if (s.length <= SHORT) {
    const body = bulkHeader(out, at, s.length)
    if (writeAscii(out, body, s) >= 0) return crlf(out, body + s.length)
  }
  const body = bulkHeader(out, at, Buffer.byteLength(s))
  return crlf(out, body + out.write(s, body))
}

/** The client whose `sendCommand` sends the call. */
interface Sender {
  readonly options: object
  sendCommand(command: Command): unknown
}

/**
 * `FCALL` (`FCALL_RO`) of `fn` with `keys` and `argv` on `connection`, as `connection.fcall(fn,
 * keys.length, ...keys, ...argv)` would send it (`callBuffer` when `binary`: bulk replies as
 * Buffers); the reply's promise.
 */
export const sendFcall = (
  connection: Sender,
  fn: string,
  keys: ReadonlyArray<string>,
  argv: ReadonlyArray<string | Uint8Array>,
  readOnly: boolean,
  binary: boolean
): Promise<unknown> => {
  const head: Array<string> = [fn, String(keys.length)]
  for (const key of keys) head.push(key)
  const command = new FcallCommand(readOnly ? "fcall_ro" : "fcall", head, argv, binary, connection.options as ClientOptions)
  connection.sendCommand(command)
  return command.promise
}
