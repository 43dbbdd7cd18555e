/**
 * Field schemas the model's areas share. Private: `Model` does not re-export this module.
 */
import { Schema } from "effect"

/** String tags: a record of string to string. */
export const Tags = Schema.Record({ key: Schema.String, value: Schema.String })
/** A whole number ≥ 0. */
export const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())
/** The default input payload. */
export const EMPTY_BYTES = new Uint8Array(0)
