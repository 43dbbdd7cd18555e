/**
 * An FCALL as a client command, written by this layer. iovalkey's own command (`connection.fcall(…)`)
 * copies its arguments three times (the rest parameter, a `flat()`, the RESP text) and its `flat()`
 * walks every argument generically: with a batch's thousands of ARGV entries that cost more
 * than the rest of the command. This command keeps the function's name and keys as the client's
 * arguments (its key prefix, its cluster slot, its error messages read them) and writes the
 * ARGV entries behind them itself.
 */
import { Command } from "./driver.js"

/** What the command reads of the client's options (a `Redis`'s or a `Cluster`'s). */
interface ClientOptions {
  readonly keyPrefix?: string | undefined
  readonly showFriendlyErrorStack?: boolean | undefined
}

const CRLF = "\r\n"

class FcallCommand extends Command {
  private readonly argv: ReadonlyArray<string | Buffer>
  constructor(
    name: "fcall" | "fcall_ro",
    head: Array<string>,
    argv: ReadonlyArray<string | Buffer>,
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

  /** The command in RESP: one string while every argument is a string, else one buffer. */
  override toWritable(): string | Buffer {
    const head = this.args as ReadonlyArray<string | Buffer>
    const argv = this.argv
    let text = `*${1 + head.length + argv.length}${CRLF}$${this.name.length}${CRLF}${this.name}${CRLF}`
    let parts: Array<string | Buffer> | undefined
    for (let i = 0; i < head.length + argv.length; i++) {
      const arg = i < head.length ? head[i]! : argv[i - head.length]!
      if (typeof arg === "string") {
        text += `$${Buffer.byteLength(arg)}${CRLF}${arg}${CRLF}`
      } else {
        parts ??= []
        parts.push(`${text}$${arg.length}${CRLF}`, arg)
        text = CRLF
      }
    }
    if (parts === undefined) return text
    parts.push(text)
    let size = 0
    for (const part of parts) size += typeof part === "string" ? Buffer.byteLength(part) : part.length
    const out = Buffer.allocUnsafe(size)
    let at = 0
    for (const part of parts) at += typeof part === "string" ? out.write(part, at) : part.copy(out, at)
    return out
  }
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
  argv: ReadonlyArray<string | Buffer>,
  readOnly: boolean,
  binary: boolean
): Promise<unknown> => {
  const head: Array<string> = [fn, String(keys.length)]
  for (const key of keys) head.push(key)
  const command = new FcallCommand(readOnly ? "fcall_ro" : "fcall", head, argv, binary, connection.options as ClientOptions)
  connection.sendCommand(command)
  return command.promise
}
