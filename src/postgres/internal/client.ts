/**
 * Calling the server-side functions: one statement per operation, the clock
 * argument, the bounded retry on serialization failures and deadlocks, the
 * `{ok}` / `{err}` envelope and the decoding of results.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect, Either, Option, ParseResult, Predicate, Schema } from "effect"
import type { ParseOptions } from "effect/SchemaAST"
import { corruption, type EngineError, fromScriptCode } from "../../EngineError.js"
import { withSpanWhenTraced } from "../../internal/observability.js"
import { redactText } from "../../internal/redact.js"
import type { Direct } from "./direct.js"
import { SqlClient } from "./driver.js"
import { BACKEND, dependencyExists, fromSqlError, isRetryableConflict } from "./errors.js"

/** What did not decode; a reply may hold a token, so long hex runs are masked. */
const formatIssue = (error: ParseResult.ParseError): string =>
  redactText(
    ParseResult.ArrayFormatter.formatErrorSync(error)
      .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
      .join("; ")
  )

/** A typed argument: the SQL type it is cast to and its value. */
export type Arg = readonly [type: string, value: unknown]

export const text = (v: string | null | undefined): Arg => ["text", v ?? null]
export const int = (v: number | null | undefined): Arg => ["int", v ?? null]
export const bigint = (v: number | null | undefined): Arg => ["bigint", v ?? null]
export const uuid = (v: string | null | undefined): Arg => ["uuid", v ?? null]
export const bool = (v: boolean | null | undefined): Arg => ["boolean", v ?? null]
export const textArray = (v: ReadonlyArray<string> | null | undefined): Arg => ["text[]", v ?? null]
export const jsonb = (v: unknown): Arg => ["jsonb", v === undefined ? null : JSON.stringify(v)]
export const bytea = (v: Uint8Array | null | undefined): Arg => [
  "bytea",
  v === undefined || v === null ? null : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
]

export type ClockMode = "store" | "effect"

export interface CallerOptions {
  readonly schema: string
  readonly clock: ClockMode
  readonly maxConnections: number
  /** Attempts for 40001 / 40P01 / 55P03 before `Contention(RetryExhausted)`. */
  readonly conflictAttempts: number
  /** The layer's own pool (`layerPg`'s), for the calls sent at once (`Caller.send`). */
  readonly direct?: Direct | undefined
}

export interface Caller {
  /** The operation's `now`: Effect's clock in "effect" mode, `null` (database clock) otherwise. */
  readonly now: Effect.Effect<number | null>
  /** Calls `ff_<fn>` with `args` and the clock; returns the `ok` value or the mapped error. */
  readonly call: (op: string, fn: string, args: ReadonlyArray<Arg>) => Effect.Effect<unknown, EngineError>
  /**
   * `ff_<fn>` once per row of `rows` (all with the same argument types) in one statement, so one
   * transaction; each row's reply unwrapped at its index. A statement that fails fails them all.
   */
  readonly callMany: (
    op: string,
    fn: string,
    rows: ReadonlyArray<ReadonlyArray<Arg>>
  ) => Effect.Effect<ReadonlyArray<Either.Either<unknown, EngineError>>, EngineError>
  /**
   * As `callMany`, through the set function `ff_<fn>`, which takes each argument as an array (one
   * element per row) and returns one reply per row, in order.
   */
  readonly callSet: (
    op: string,
    fn: string,
    rows: ReadonlyArray<ReadonlyArray<Arg>>
  ) => Effect.Effect<ReadonlyArray<Either.Either<unknown, EngineError>>, EngineError>
  /**
   * As `call`, for the procedure `ff_<fn>` (one that commits between its steps): `CALL` with `args`,
   * the clock, the schema's name and its INOUT reply.
   */
  readonly callProcedure: (op: string, fn: string, args: ReadonlyArray<Arg>) => Effect.Effect<unknown, EngineError>
  /**
   * Whether the calls run inside the caller's own transaction (`SqlClient.withTransaction`):
   * there a procedure that commits between its steps cannot run.
   */
  readonly inTransaction: Effect.Effect<boolean>
  /**
   * `ff_<fn>` (with `procedure`, the procedure, as `callProcedure` calls it) with `args` and `now`
   * sent at once, on the caller's stack, on a connection of the layer's own pool
   * (`direct.ts`); `done` gets the reply's `ok` value or the error, mapped as `call` maps it
   * (`conflict`: a serialization failure or deadlock, which `call` would have tried again), in
   * the reply's callback, once. Not retried, outside the caller's transaction and span.
   * `false`, and nothing sent, where the layer has no pool of its own (`make` over a
   * `SqlClient`) or it is closing.
   */
  readonly send: (
    op: string,
    fn: string,
    args: ReadonlyArray<Arg>,
    now: number | null,
    procedure: boolean,
    done: (reply: Either.Either<unknown, EngineError>, conflict: boolean) => void
  ) => boolean
  /** Whether `send` may be used now (the layer has a pool of its own). */
  readonly canSend: boolean
  /** As `call`, with an explicit `now` (several calls sharing one instant). */
  readonly callAt: (
    op: string,
    fn: string,
    args: ReadonlyArray<Arg>,
    now: number | null
  ) => Effect.Effect<unknown, EngineError>
}

/** A timer outside Effect's `Clock`: retry backoff must not wait for a `TestClock`. */
export const realSleep = (ms: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(handle))
  })

export const quoteIdent = (name: string): string => `"${name.replace(/"/g, "\"\"")}"`


interface Envelope {
  readonly ok?: unknown
  readonly err?: unknown
  readonly d?: unknown
}

/** A function's reply envelope: its `ok` value, or the error its `err` names. */
export const unwrap = (op: string, value: unknown): Either.Either<unknown, EngineError> => {
  if (!Predicate.isObject(value)) return Either.left(corruption(`${op}: reply is not an object`))
  const env = value as Envelope
  if (typeof env.err === "string") {
    const details = Array.isArray(env.d) ? env.d.map((x) => (typeof x === "string" ? x : String(x))) : []
    if (env.err === "dependency_already_exists") return Either.left(dependencyExists(op, details[0]))
    return Either.left(fromScriptCode(BACKEND, env.err, details))
  }
  if (!("ok" in env)) return Either.left(corruption(`${op}: reply has neither ok nor err`))
  return Either.right(env.ok)
}

export const makeCaller = (options: CallerOptions): Effect.Effect<Caller, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const schema = quoteIdent(options.schema)
    const texts = new Map<string, string>()
    const statementText = (fn: string, args: ReadonlyArray<Arg>): string => {
      const key = `${fn}/${args.map((a) => a[0]).join(",")}`
      let t = texts.get(key)
      if (t === undefined) {
        const params = [...args.map((a, i) => `$${i + 1}::${a[0]}`), `$${args.length + 1}::bigint`]
        t = `SELECT ${schema}.ff_${fn}(${params.join(", ")}) AS r`
        texts.set(key, t)
      }
      return t
    }

    const now: Effect.Effect<number | null> = options.clock === "effect" ? Clock.currentTimeMillis : Effect.succeed(null)

    const withRetry = <A>(eff: Effect.Effect<A, SqlError>, attempt: number): Effect.Effect<A, SqlError> =>
      Effect.catchIf(eff, (e) => isRetryableConflict(e) && attempt < options.conflictAttempts, () =>
        Effect.flatMap(
          realSleep(Math.round((2 ** attempt) * (1 + Math.random()))),
          () => withRetry(eff, attempt + 1)
        ))

    /** One statement whose rows carry the replies in `r`: retried on conflicts, errors mapped, in a span. */
    const execute = <A>(
      op: string,
      fn: string,
      text: string,
      values: ReadonlyArray<unknown>,
      replies: (rows: ReadonlyArray<{ readonly r: unknown }>) => Either.Either<A, EngineError>,
      attributes: Readonly<Record<string, number>> = {}
    ): Effect.Effect<A, EngineError> => {
      const startedAt = Date.now()
      return withRetry(sql.unsafe<{ readonly r: unknown }>(text, values), 1).pipe(
        Effect.mapError((e) => fromSqlError(e, { op, maxConnections: options.maxConnections, startedAt })),
        Effect.flatMap(replies),
        // (no span under Effect's built-in tracer, which exports nothing: one cost 10-35 µs a call)
        withSpanWhenTraced(`PostgresBackend.ff_${fn}`, () => ({ backend: BACKEND, "db.system": "postgresql", ...attributes }))
      )
    }

    const callAt = (op: string, fn: string, args: ReadonlyArray<Arg>, at: number | null) =>
      execute(op, fn, statementText(fn, args), [...args.map((a) => a[1]), at], (rows) => unwrap(op, rows[0]?.r))

    // SELECT ff_fn(t.c1, …, $now) FROM unnest($1::type[], …) WITH ORDINALITY AS t(c1, …, ord) ORDER BY ord
    const manyText = (fn: string, types: ReadonlyArray<string>): string => {
      const key = `many:${fn}/${types.join(",")}`
      let t = texts.get(key)
      if (t === undefined) {
        const columns = types.map((_, i) => `c${i + 1}`)
        const arrays = types.map((type, i) => `$${i + 1}::${type}[]`)
        t = `SELECT ${schema}.ff_${fn}(${columns.map((c) => `t.${c}`).join(", ")}, $${types.length + 1}::bigint) AS r ` +
          `FROM unnest(${arrays.join(", ")}) WITH ORDINALITY AS t(${columns.join(", ")}, ord) ORDER BY t.ord`
        texts.set(key, t)
      }
      return t
    }

    // SELECT x.r FROM ff_fn($1::type[], …, $now) WITH ORDINALITY AS x(r, ord) ORDER BY x.ord
    const setText = (fn: string, types: ReadonlyArray<string>): string => {
      const key = `set:${fn}/${types.join(",")}`
      let t = texts.get(key)
      if (t === undefined) {
        const arrays = types.map((type, i) => `$${i + 1}::${type}[]`)
        t = `SELECT x.r FROM ${schema}.ff_${fn}(${arrays.join(", ")}, $${types.length + 1}::bigint) ` +
          `WITH ORDINALITY AS x(r, ord) ORDER BY x.ord`
        texts.set(key, t)
      }
      return t
    }

    const batch = (text: (fn: string, types: ReadonlyArray<string>) => string): Caller["callMany"] => (op, fn, rows) =>
      Effect.flatMap(now, (at) => {
        const types = (rows[0] ?? []).map((a) => a[0])
        const values: Array<unknown> = types.map((_, i) => rows.map((row) => row[i]![1]))
        values.push(at)
        const replies = (found: ReadonlyArray<{ readonly r: unknown }>) =>
          found.length === rows.length ?
            Either.right(found.map((row) => unwrap(op, row.r))) :
            Either.left(corruption(`${op}: ${found.length} replies for ${rows.length} calls`))
        return execute(op, fn, text(fn, types), values, replies, { "db.batch": rows.length })
      })
    const callMany = batch(manyText)
    const callSet = batch(setText)

    // CALL ff_fn($1::type, …, $now::bigint, $schema::text, NULL)
    const procedureText = (fn: string, args: ReadonlyArray<Arg>): string => {
      const key = `call:${fn}/${args.map((a) => a[0]).join(",")}`
      let t = texts.get(key)
      if (t === undefined) {
        const params = [...args.map((a, i) => `$${i + 1}::${a[0]}`), `$${args.length + 1}::bigint`, `$${args.length + 2}::text`]
        t = `CALL ${schema}.ff_${fn}(${params.join(", ")}, NULL)`
        texts.set(key, t)
      }
      return t
    }
    const callProcedure = (op: string, fn: string, args: ReadonlyArray<Arg>) =>
      Effect.flatMap(now, (at) =>
        execute(op, fn, procedureText(fn, args), [...args.map((a) => a[1]), at, options.schema], (rows) =>
          unwrap(op, rows[0]?.r)))

    const call = options.clock === "effect" ?
      (op: string, fn: string, args: ReadonlyArray<Arg>) => Effect.flatMap(now, (at) => callAt(op, fn, args, at)) :
      (op: string, fn: string, args: ReadonlyArray<Arg>) => callAt(op, fn, args, null)

    const inTransaction = Effect.map(Effect.serviceOption(SqlClient.TransactionConnection), Option.isSome)

    const direct = options.direct
    const send: Caller["send"] = (op, fn, args, at, procedure, done) => {
      if (direct === undefined) return false
      const startedAt = Date.now()
      const values = procedure ? [...args.map((a) => a[1]), at, options.schema] : [...args.map((a) => a[1]), at]
      return direct.query(procedure ? procedureText(fn, args) : statementText(fn, args), values, (r) =>
        Either.isRight(r) ?
          done(unwrap(op, r.right), false) :
          done(
            Either.left(fromSqlError(r.left, { op, maxConnections: options.maxConnections, startedAt })),
            isRetryableConflict(r.left)
          ))
    }

    return { now, inTransaction, call, callAt, callMany, callSet, callProcedure, send, canSend: direct !== undefined }
  })

// One compiled decoder per schema (compiling is far dearer than decoding a reply).
const decoders = new WeakMap<Schema.Schema.Any, (u: unknown, o: ParseOptions) => Either.Either<unknown, ParseResult.ParseError>>()

/** Decodes a stored value, at once; a value that does not decode is `Validation(Corruption)`. */
export const decodeNow = <A, I>(op: string, schema: Schema.Schema<A, I>) => {
  let run = decoders.get(schema) as ((u: unknown, o: ParseOptions) => Either.Either<A, ParseResult.ParseError>) | undefined
  if (run === undefined) {
    run = Schema.decodeUnknownEither(schema)
    decoders.set(schema, run)
  }
  const decoder = run
  return (value: unknown): Either.Either<A, EngineError> =>
    Either.mapLeft(decoder(value, { onExcessProperty: "ignore" }), (e) => corruption(`${op}: ${formatIssue(e)}`))
}

/** Decodes a stored value; a value that does not decode is `Validation(Corruption)`. */
export const decode = <A, I>(op: string, schema: Schema.Schema<A, I>) => {
  const run = decodeNow(op, schema)
  return (value: unknown): Effect.Effect<A, EngineError> => run(value)
}
