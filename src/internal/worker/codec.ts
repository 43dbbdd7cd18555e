/**
 * Typed payloads: a Schema-encoded value as UTF-8 JSON bytes, and back.
 * Shared by the producer helpers and the worker runtime.
 */
import { Effect, ParseResult, Schema } from "effect"

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

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** Encodes `value` with `schema`, then to JSON bytes. */
export const encodeJson = <A, I>(
  schema: Schema.Schema<A, I>,
  value: A,
  subject: string
): Effect.Effect<Uint8Array, PayloadError> =>
  Schema.encode(schema)(value).pipe(
    Effect.mapError((e) =>
      new PayloadError({ direction: "encode", subject, detail: ParseResult.TreeFormatter.formatErrorSync(e) })
    ),
    Effect.flatMap((encoded) =>
      Effect.try({
        try: () => encoder.encode(JSON.stringify(encoded) ?? "null"),
        catch: (e) => new PayloadError({ direction: "encode", subject, detail: `not JSON: ${String(e)}` })
      })
    )
  )

/** Parses JSON bytes and decodes them with `schema`; empty bytes read as JSON `null`. */
export const decodeJson = <A, I>(
  schema: Schema.Schema<A, I>,
  bytes: Uint8Array,
  subject: string
): Effect.Effect<A, PayloadError> =>
  Effect.try({
    try: (): unknown => (bytes.length === 0 ? null : JSON.parse(decoder.decode(bytes))),
    catch: (e) =>
      new PayloadError({
        direction: "decode",
        subject,
        detail: `payload is not UTF-8 JSON (${bytes.length} bytes): ${e instanceof Error ? e.message : String(e)}`
      })
  }).pipe(
    Effect.flatMap((json) =>
      Schema.decodeUnknown(schema)(json).pipe(
        Effect.mapError((e) =>
          new PayloadError({ direction: "decode", subject, detail: ParseResult.TreeFormatter.formatErrorSync(e) })
        )
      )
    )
  )
