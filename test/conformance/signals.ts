/**
 * Suspension, waitpoints and signals (docs/design/signals.md): suspend →
 * signal → resume, tokens (good, forged, expired, rotated), composite conditions, pending waitpoints that buffer signals,
 * suspension timeouts of every behaviour, and the HMAC keystore admin.
 *
 * One sub-area a file: signals-delivery.ts (suspend, deliver_signal), signals-ownership.ts (signal and
 * waitpoint ids belong to their execution), signals-waitpoints.ts (composite conditions, pending waitpoints),
 * signals-timeouts.ts (suspension timeouts), signals-keystore.ts (the HMAC keystore).
 */
import { describe } from "@effect/vitest"
import type { Tester } from "./helpers.js"
import { signalsDelivery } from "./signals-delivery.js"
import { signalsKeystore } from "./signals-keystore.js"
import { signalsOwnership } from "./signals-ownership.js"
import { signalsTimeouts } from "./signals-timeouts.js"
import { signalsWaitpoints } from "./signals-waitpoints.js"

export const signals = (t: Tester) =>
  describe("suspension and signals", () => {
    signalsDelivery(t)
    signalsOwnership(t)
    signalsWaitpoints(t)
    signalsTimeouts(t)
    signalsKeystore(t)
  })
