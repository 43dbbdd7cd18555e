/**
 * Typed payloads: a Schema-encoded value as UTF-8 JSON bytes, and back.
 * Shared by the producer helpers and the worker runtime.
 */
import { Effect, Either, ParseResult, Schema, SchemaAST } from "effect"
import { compile } from "../fastValidate.js"
import { utf8Decode, utf8Encode } from "../utf8.js"

/** The encoding label stored next to payloads written by these helpers. */
export const JSON_ENCODING = "json"

/**
 * A value that could not be encoded to, or decoded from, the JSON payload of
 * an execution (input, result or signal).
 *
 * @since 0.1.0
 */
export class PayloadError extends Schema.TaggedError<PayloadError>()("PayloadError", {
  /** `encode` (value → bytes) or `decode` (bytes → value). */
  direction: Schema.Literal("encode", "decode"),
  /** What the payload is: `input of "resize"`, `result of {fp:1}:…`. */
  subject: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `cannot ${this.direction} ${this.subject}: ${this.detail}`
  }
}


const schemaError = (direction: "encode" | "decode", subject: string) => (e: ParseResult.ParseError) =>
  new PayloadError({ direction, subject, detail: ParseResult.TreeFormatter.formatErrorSync(e) })

const asIs = <E>(e: E) => e

// A schema whose transformations are synchronous decodes and encodes to an `Either`, itself an
// effect of one step; the codecs keep it so (as `ParseResult.mapError` does), which saves the
// worker several steps per task.

const fastChecks = new WeakMap<SchemaAST.AST, ((u: unknown) => unknown) | null>()

/**
 * The compiled validator of `schema` (fastValidate.ts) when decoding and encoding with it are
 * validation alone (no transformation anywhere: its type side is itself), else `undefined`. It
 * answers for valid values only, with what Schema returns; anything else takes Schema's path,
 * which decides and explains. A payload of a plain struct is checked in one pass instead of
 * Schema's parser (about 0.7 kB of allocation and a microsecond per payload).
 */
const fastCheckOf = (schema: Schema.Schema.Any): ((u: unknown) => unknown) | undefined => {
  let check = fastChecks.get(schema.ast)
  if (check === undefined) {
    check = (SchemaAST.typeAST(schema.ast) === schema.ast ? compile(schema as Schema.Schema<unknown>) : undefined) ?? null
    fastChecks.set(schema.ast, check)
  }
  return check ?? undefined
}

/** `effect` itself when it is an `Either`. */
const asEither = <A, E>(effect: Effect.Effect<A, E>): Either.Either<A, E> | undefined =>
  Either.isEither(effect) ? (effect as unknown as Either.Either<A, E>) : undefined

/**
 * `schema`'s encoding of a value to JSON bytes, made once for many values; its `PayloadError`
 * goes through `onError`.
 */
export const jsonEncoder = <A, I, E = PayloadError>(
  schema: Schema.Schema<A, I>,
  subject: string,
  onError: (e: PayloadError) => E = asIs as (e: PayloadError) => E
): (value: A) => Effect.Effect<Uint8Array, E> => {
  const encode = Schema.encode(schema)
  const schemaFailed = schemaError("encode", subject)
  const failed = (e: ParseResult.ParseError) => onError(schemaFailed(e))
  const toBytes = (encoded: I): Either.Either<Uint8Array, E> => {
    try {
      return Either.right(utf8Encode(JSON.stringify(encoded) ?? "null"))
    } catch (e) {
      return Either.left(onError(new PayloadError({ direction: "encode", subject, detail: `not JSON: ${String(e)}` })))
    }
  }
  const fast = fastCheckOf(schema)
  return (value) => {
    if (fast !== undefined) {
      const valid = fast(value)
      if (valid !== undefined) return toBytes(valid as I)
    }
    const encoded = encode(value)
    const now = asEither(encoded)
    return now !== undefined ?
      Either.flatMap(Either.mapLeft(now, failed), toBytes) :
      Effect.flatMap(Effect.mapError(encoded, failed), toBytes)
  }
}

/**
 * `schema`'s decoding of JSON bytes (empty bytes read as JSON `null`), made once for many
 * payloads; its `PayloadError` goes through `onError`.
 */
export const jsonDecoder = <A, I, E = PayloadError>(
  schema: Schema.Schema<A, I>,
  subject: string,
  onError: (e: PayloadError) => E = asIs as (e: PayloadError) => E
): (bytes: Uint8Array) => Effect.Effect<A, E> => {
  const decode = Schema.decodeUnknown(schema)
  const fast = fastCheckOf(schema)
  const schemaFailed = schemaError("decode", subject)
  const failed = (e: ParseResult.ParseError) => onError(schemaFailed(e))
  return (bytes) => {
    let json: unknown
    try {
      json = bytes.length === 0 ? null : JSON.parse(utf8Decode(bytes))
    } catch (e) {
      return Either.left(onError(
        new PayloadError({
          direction: "decode",
          subject,
          detail: `payload is not UTF-8 JSON (${bytes.length} bytes): ${e instanceof Error ? e.message : String(e)}`
        })
      ))
    }
    if (fast !== undefined) {
      const valid = fast(json)
      if (valid !== undefined) return Either.right(valid as A)
    }
    const decoded = decode(json)
    const now = asEither(decoded)
    return now !== undefined ? Either.mapLeft(now, failed) : Effect.mapError(decoded, failed)
  }
}

/** Encodes `value` with `schema`, then to JSON bytes. */
export const encodeJson = <A, I>(
  schema: Schema.Schema<A, I>,
  value: A,
  subject: string
): Effect.Effect<Uint8Array, PayloadError> => Effect.suspend(() => jsonEncoder(schema, subject)(value))

/** Parses JSON bytes and decodes them with `schema`; empty bytes read as JSON `null`. */
export const decodeJson = <A, I>(
  schema: Schema.Schema<A, I>,
  bytes: Uint8Array,
  subject: string
): Effect.Effect<A, PayloadError> => Effect.suspend(() => jsonDecoder(schema, subject)(bytes))
