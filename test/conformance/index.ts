/**
 * The backend-agnostic conformance suite (docs/design/testing.md#conformance-suite).
 *
 * ```ts
 * suite("memory", MemoryBackend.layer())                                   // a fresh engine per test
 * suite("valkey", ValkeyBackend.layer({ url, clock: "effect" }), { fresh: false })   // one engine, unique ids
 * ```
 *
 * Written against the `EngineBackend` and `Maintenance` tags only. Every test
 * runs under `TestClock`: the layer must read time from Effect's `Clock`.
 */
import { describe, it, layer as sharedLayer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import type { EngineBackend } from "../../src/EngineBackend.js"
import type { Maintenance } from "../../src/Maintenance.js"
import { admin } from "./admin.js"
import { budgets } from "./budgets.js"
import { cancelFlows } from "./cancelFlow.js"
import { completions } from "./completions.js"
import { events } from "./events.js"
import { flows } from "./flows.js"
import { hostileInput } from "./hostileInput.js"
import { type Body, resolveOptions, type SuiteOptions, type Tester } from "./helpers.js"
import { history } from "./history.js"
import { leases } from "./leases.js"
import { limits } from "./limits.js"
import { lifecycle } from "./lifecycle.js"
import { lanes } from "./lanes.js"
import { listings } from "./listings.js"
import { retentionArea } from "./retention.js"
import { scheduling } from "./scheduling.js"
import { signals } from "./signals.js"
import { streams } from "./streams.js"
import { validation } from "./validation.js"
import { wakeups } from "./wakeups.js"

export type { SuiteOptions } from "./helpers.js"

/** Every area of the suite, in registration order. */
export const areas: ReadonlyArray<(t: Tester) => void> = [
  lifecycle,
  completions,
  leases,
  scheduling,
  flows,
  cancelFlows,
  signals,
  streams,
  budgets,
  listings,
  lanes,
  validation,
  limits,
  hostileInput,
  admin,
  retentionArea,
  history,
  wakeups,
  events
]

export const suite = (
  name: string,
  layer: Layer.Layer<EngineBackend | Maintenance, unknown>,
  options?: SuiteOptions
): void => {
  describe(name, () => {
    const resolved = resolveOptions(options)
    if (resolved.fresh) {
      const test = (title: string, body: () => Body, timeoutMs?: number) =>
        it.effect(title, () => Effect.provide(Effect.suspend(body), layer), timeoutMs ?? resolved.timeout)
      const t: Tester = {
        options: resolved,
        test,
        freshOnly: test
      }
      for (const area of areas) area(t)
    } else {
      sharedLayer(layer, { timeout: resolved.timeout })((shared) => {
        const t: Tester = {
          options: resolved,
          test: (title, body, timeoutMs) => shared.effect(title, () => Effect.suspend(body), timeoutMs ?? resolved.timeout),
          // Needs an untouched engine: it runs in the fresh-engine suites only.
          freshOnly: () => undefined
        }
        for (const area of areas) area(t)
      })
    }
  })
}
