/**
 * SQLSTATE and connection failures → `EngineError` (errors.md §7.3).
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Either, ParseResult, Predicate, Schema } from "effect"
import {
  type BackendErrorKind,
  conflict,
  Conflict,
  corruption,
  contention,
  type EngineError,
  fromScriptCode,
  invalidInput,
  ResourceExhausted,
  state,
  Timeout,
  Transport,
  Unavailable
} from "../../EngineError.js"
import { redactText, safeCause } from "../../internal/redact.js"
import { EdgeSnapshot } from "../../Model.js"

export const BACKEND = "postgres"

/** The fields of a node-postgres `DatabaseError` (or a socket error) we read. */
interface NativeError {
  readonly code?: unknown
  readonly message?: unknown
  readonly detail?: unknown
  readonly constraint?: unknown
  readonly column?: unknown
  readonly table?: unknown
}

const native = (e: SqlError): NativeError | undefined =>
  Predicate.isObject(e.cause) ? (e.cause as NativeError) : undefined

/** The SQLSTATE (or socket error code) behind a `SqlError`. */
export const sqlState = (e: SqlError): string | undefined => {
  const code = native(e)?.code
  return typeof code === "string" ? code : undefined
}

const nativeMessage = (e: SqlError): string => {
  const m = native(e)?.message
  return redactText(typeof m === "string" && m.length > 0 ? m : e.message)
}

/**
 * The failure as a cause that keeps the server's message, SQLSTATE and the
 * names of what failed, never its detail, context or hint: a check or not-null
 * violation's detail dumps the row, which may hold a secret.
 */
const safeSqlCause = (e: SqlError): Error =>
  safeCause(native(e) ?? e, ["code", "severity", "constraint", "table", "column", "schema", "routine"], `${e.message}: ${nativeMessage(e)}`)

/** Serialization failure, deadlock or lock-not-available: retry the transaction. */
export const isRetryableConflict = (e: SqlError): boolean => {
  const code = sqlState(e)
  return code === "40001" || code === "40P01" || code === "55P03"
}

const decodeEdge = Schema.decodeUnknownEither(Schema.parseJson(EdgeSnapshot))

/** `Conflict(DependencyAlreadyExists)` carrying the stored edge. */
export const dependencyExists = (op: string, detail: string | undefined): EngineError =>
  Either.match(decodeEdge(detail ?? ""), {
    onLeft: (e) => corruption(`${op}: existing edge: ${ParseResult.TreeFormatter.formatErrorSync(e).split("\n")[0]}`),
    onRight: (existing) => new Conflict({ kind: "DependencyAlreadyExists", existing })
  })

/** Our own `RAISE … USING ERRCODE = 'FF001'`: a domain error that rolled the operation back. */
const DOMAIN_STATE = "FF001"

const transport = (
  e: SqlError,
  kind: BackendErrorKind,
  retryable: boolean,
  message: string,
  nativeCode?: string
): Transport =>
  new Transport({
    backend: BACKEND,
    kind,
    retryable,
    message,
    ...(nativeCode === undefined ? {} : { nativeCode }),
    cause: safeSqlCause(e)
  })

const CONNECTION_LOST = new Set(["08000", "08001", "08003", "08004", "08006", "57P01", "57P02"])
const BAD_VALUE = new Set(["23502", "23514", "22P02", "22003", "22001", "22007", "22008"])
const SCHEMA_DRIFT = new Set(["42P01", "42703", "42883", "3F000"])
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN"
])

const parseDetails = (detail: unknown): ReadonlyArray<string> => {
  if (typeof detail !== "string") return []
  try {
    const parsed: unknown = JSON.parse(detail)
    return Array.isArray(parsed) ? parsed.map(String) : []
  } catch {
    return []
  }
}

export interface MapOptions {
  readonly op: string
  readonly maxConnections: number
  readonly startedAt?: number | undefined
}

/**
 * Maps a failed statement. Retryable conflicts are handled by the caller's
 * retry loop; reaching here with one means the retries ran out.
 */
export const fromSqlError = (e: SqlError, options: MapOptions): EngineError => {
  const code = sqlState(e)
  const message = nativeMessage(e)
  const n = native(e)
  if (code === DOMAIN_STATE) {
    const details = parseDetails(n?.detail)
    if (message === "dependency_already_exists") return dependencyExists(options.op, details[0])
    return fromScriptCode(BACKEND, message, details)
  }
  if (code === undefined) {
    // Not a server error: the pool or the socket failed.
    if (/timeout exceeded when trying to connect/i.test(message)) {
      return new ResourceExhausted({ pool: "postgres_connections", max: options.maxConnections })
    }
    if (/pool.*(ended|closed)|Cannot use a pool after calling end/i.test(message)) {
      return new Unavailable({ op: options.op })
    }
    return transport(e, "transport", true, `${options.op}: ${message}`)
  }
  if (SOCKET_CODES.has(code)) return transport(e, "transport", true, `${options.op}: ${message}`, code)
  if (code === "40001" || code === "40P01" || code === "55P03") return contention("RetryExhausted")
  if (CONNECTION_LOST.has(code)) return transport(e, "transport", true, `${options.op}: ${message}`, code)
  if (code === "08007" || code === "40003") return transport(e, "transport", false, `${options.op}: ${message}`, code)
  if (code === "57P03") return transport(e, "busy_loading", true, `${options.op}: ${message}`, code)
  if (code === "53300") return new ResourceExhausted({ pool: "postgres_connections", max: options.maxConnections })
  if (code === "57014") {
    const elapsed = options.startedAt === undefined ? Duration.zero : Duration.millis(Date.now() - options.startedAt)
    return new Timeout({ op: options.op, elapsed })
  }
  if (BAD_VALUE.has(code)) {
    const where = [n?.constraint, n?.column].filter((x): x is string => typeof x === "string").join(" ")
    return invalidInput(`${options.op}: ${where === "" ? message : where}: ${message}`)
  }
  if (code === "23503") return invalidInput(`${options.op}: ${message}`)
  if (code === "23505") {
    // a client-minted waitpoint id taken concurrently by another execution
    if (n?.constraint === "waitpoint_pkey") return conflict("WaitpointAlreadyExists")
    // a client-minted signal id taken concurrently by another signal
    if (n?.constraint === "signal_id_unique") return state("DuplicateSignal")
    return transport(e, "protocol", false, `${options.op}: unexpected unique violation: ${message}`, code)
  }
  if (code === "28000" || code === "28P01") return transport(e, "auth", false, `${options.op}: ${message}`, code)
  if (SCHEMA_DRIFT.has(code)) {
    return transport(e, "protocol", false, `${options.op}: ${message} (is the schema migrated and its function library installed?)`, code)
  }
  return transport(e, "other", false, `${options.op}: ${message}`, code)
}
