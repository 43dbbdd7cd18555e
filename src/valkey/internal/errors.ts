/**
 * Native Valkey / iovalkey failures as `Transport`s
 * (docs/design/errors.md#valkey-failures).
 */
import { type BackendErrorKind, Transport } from "../../EngineError.js"
import { redactText, safeCause } from "../../internal/redact.js"

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : String(error)

/** A server error that echoes a command ("unknown command …, with args beginning with: …") keeps no argument. */
const safeMessageOf = (error: unknown): string =>
  redactText(messageOf(error).replace(/, with args beginning with:[\s\S]*$/, ", with args beginning with: <redacted>"))

/**
 * The native failure as a cause that keeps its class, masked message, error
 * code and command name, never the command's arguments (iovalkey keeps them in
 * `command.args`: a signal's token, a rotated secret).
 */
export const safeValkeyCause = (error: unknown): Error => {
  const copy = safeCause(error, ["code"], safeMessageOf(error))
  const command = typeof error === "object" && error !== null ? (error as { command?: { name?: unknown } }).command : undefined
  if (typeof command?.name === "string") Object.assign(copy, { command: command.name })
  return copy
}

const codeOf = (error: unknown): string | undefined => {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { readonly code: unknown }).code
    return typeof code === "string" ? code : undefined
  }
  return undefined
}

/** `true` when the server has no such function (a restarted or flushed node). */
export const isMissingFunction = (error: unknown): boolean =>
  /function not found|function not loaded|no matching function|noscript/i.test(messageOf(error))

interface Classified {
  readonly kind: BackendErrorKind
  readonly nativeCode: string
  readonly retryable: boolean
}

const IO_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "EAI_AGAIN"])

/**
 * Classifies a native error. `sent` tells whether the command may have reached
 * the server: a connection lost after sending may have applied the command, so
 * it is not blindly retryable (`fatal_receive`).
 */
export const classify = (error: unknown, sent: boolean): Classified => {
  const message = messageOf(error)
  // the cluster client gave up redirecting or retrying a command: what it last got decides
  const last = /^Too many Cluster redirections\. Last error: (?:[A-Za-z]*Error: )?([\s\S]*)$/.exec(message)?.[1]
  if (last !== undefined) {
    const inner = classify(new Error(last), sent)
    return inner.nativeCode === "unknown" ? { kind: "cluster", nativeCode: "too_many_redirections", retryable: false } : inner
  }
  const prefix = /^([A-Z][A-Z_]+)\b/.exec(message)?.[1]
  const code = codeOf(error)
  switch (prefix) {
    case "LOADING":
      return { kind: "busy_loading", nativeCode: "busy_loading", retryable: true }
    case "BUSY":
      return { kind: "busy_loading", nativeCode: "busy", retryable: true }
    case "TRYAGAIN":
      return { kind: "cluster", nativeCode: "try_again", retryable: true }
    case "CLUSTERDOWN":
      return { kind: "cluster", nativeCode: "cluster_down", retryable: true }
    // a redirection or a refusal: the node did not run the command, and the slot map settles
    case "MOVED":
      return { kind: "cluster", nativeCode: "moved", retryable: true }
    case "ASK":
      return { kind: "cluster", nativeCode: "ask", retryable: true }
    case "CROSSSLOT":
      return { kind: "cluster", nativeCode: "cross_slot", retryable: false }
    case "MASTERDOWN":
      return { kind: "cluster", nativeCode: "master_down", retryable: true }
    case "NOAUTH":
    case "WRONGPASS":
      return { kind: "auth", nativeCode: "authentication_failed", retryable: false }
    case "NOPERM":
      return { kind: "auth", nativeCode: "permission_denied", retryable: false }
    case "NOSCRIPT":
      return { kind: "script_not_loaded", nativeCode: "no_script", retryable: false }
    case "READONLY":
      return { kind: "protocol", nativeCode: "read_only", retryable: false }
    case "EXECABORT":
      return { kind: "protocol", nativeCode: "exec_abort", retryable: false }
    case "OOM":
      // refused before it ran; memory has to be freed or raised first
      return { kind: "other", nativeCode: "oom", retryable: false }
    default:
      break
  }
  if (isMissingFunction(error)) return { kind: "script_not_loaded", nativeCode: "no_script", retryable: false }
  // a command that timed out after it was written may have run
  if (/timed out/i.test(message)) return { kind: "timeout", nativeCode: "timeout", retryable: !sent }
  if (/Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready/i.test(message)) {
    return { kind: "cluster", nativeCode: "no_connection_for_route", retryable: true }
  }
  if (
    (code !== undefined && IO_CODES.has(code)) || /Connection is closed|max retries per request|Stream isn't writeable|ECONNREFUSED|ECONNRESET/i.test(message)
  ) {
    return sent ?
      { kind: "transport", nativeCode: "fatal_receive", retryable: false } :
      { kind: "transport", nativeCode: "io_error", retryable: true }
  }
  if (/^ERR\b|^WRONGTYPE\b/.test(message)) return { kind: "protocol", nativeCode: "response_error", retryable: false }
  return { kind: "other", nativeCode: "unknown", retryable: false }
}

/** A native failure of `op` as a `Transport`. */
export const fromValkeyError = (op: string, error: unknown, sent: boolean): Transport => {
  const c = classify(error, sent)
  return new Transport({
    backend: "valkey",
    kind: c.kind,
    retryable: c.retryable,
    message: `${op}: ${safeMessageOf(error)}`,
    nativeCode: c.nativeCode,
    cause: safeValkeyCause(error)
  })
}

/** A reply that does not have the shape the function promises. */
export const parseError = (fcall: string, message: string, executionId?: string): Transport =>
  new Transport({
    backend: "valkey",
    kind: "protocol",
    retryable: false,
    message: `parse error: ${fcall}${executionId === undefined ? "" : `[exec=${executionId}]`}: ${redactText(message)}`,
    parse: executionId === undefined ?
      { fcall, message: redactText(message) } :
      { fcall, executionId, message: redactText(message) }
  })
