import { Redacted } from "effect"
import type { HmacSecret } from "../../src/EngineBackend.js"
import { SEED_KID, SEED_SECRET } from "../conformance/helpers.js"

/**
 * The secret the tests' server layers start with (a layer on a fresh key prefix or schema needs one):
 * the conformance suite's seed, so that its `ensureHmac` finds it stored.
 */
export const testHmacSecret: HmacSecret = { kid: SEED_KID, secretHex: Redacted.make(SEED_SECRET) }
