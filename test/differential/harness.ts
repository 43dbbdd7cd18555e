/**
 * Randomized differential testing (docs/design/testing.md#differential-tests): the same random operation
 * sequence runs against a reference engine (the memory layer) and a candidate engine (another
 * memory instance, Valkey or Postgres), and every outcome is compared.
 *
 * - A `Command` is one step of a sequence. Commands never carry backend values: they refer to
 *   executions, handles, waitpoints, flows, edges and budgets by index into what earlier
 *   commands produced on *that* run (`pickRecent`: 0 = the most recent), so one generated
 *   sequence is meaningful on every backend.
 * - Ids the test mints (execution, flow, edge, signal, suspension, waitpoint, budget ids) are
 *   derived from the sample's `salt` and the command's position, so they are identical on
 *   every backend. Ids and values a backend mints itself (lease ids, attempt ids, pending
 *   waitpoint ids, tokens, stream entry ids, fingerprints) are replaced by placeholders in order
 *   of first appearance; timestamps become `T+<ms since the sequence start>`.
 * - Every run gets a fresh, empty engine (`EngineFactory.make`: a new memory engine, a new Valkey
 *   key prefix, an emptied Postgres schema — see servers.ts) and a fresh `TestClock` set to
 *   `BASE_TIME`; the engine is built on the live clock and every operation then runs under the
 *   `TestClock` (server layers are built with `clock: "effect"`). Time moves only by `Advance` /
 *   `Settle` commands (and the 1 ms tick below).
 * - After every command the executions, flows and budgets it touched are read back
 *   (`describeExecution`, `readExecutionInfo`, `describeFlow`, `getBudgetStatus`, a
 *   `listExecutions` page); maintenance passes read everything; a final sweep reads the whole
 *   engine (results, inputs, pending waitpoints, edges, listings with cursors, lanes).
 * - `checkDifferential` runs the property with `FastCheck`, seeded (printed), and on failure
 *   throws a report: seed and replay path, the shrunk sequence (also as JSON for
 *   `FLOWFABRIC_DIFF_REPLAY`), and the first differing step with the paths that differ.
 *   Known, reported divergences can be tolerated with `Waiver`s (counted and printed).
 *
 * Environment: `FLOWFABRIC_DIFF_SEED`, `FLOWFABRIC_DIFF_PATH`, `FLOWFABRIC_DIFF_RUNS`,
 * `FLOWFABRIC_DIFF_COMMANDS`, `FLOWFABRIC_DIFF_TIME_MS`, `FLOWFABRIC_DIFF_REPLAY`, `FLOWFABRIC_DIFF_STRICT=1` (no waivers), `FLOWFABRIC_DIFF_VERBOSE=1`.
 *
 * Conventions that keep the comparison about semantics and not about unspecified choices:
 * - `createExecution` is followed by a 1 ms clock tick, so creation times are distinct and the
 *   claim order (priority, then FIFO by `created_at`, docs/design/executions.md#claim-order) is fully specified; ties at
 *   the same millisecond are unspecified and would be reported as false divergences.
 * - Unordered results (cancel-flow member lists, edge groups, `listEdges`) are sorted.
 * - Errors compare by `_tag`, `kind`, `entity` (NotFound) and the structured payloads
 *   (`notActive`, `existing`, `kid`); free-text `detail` / `message` are kept as notes only.
 *
 * The parts, one file each:
 * - commands.ts: the constants and the `Command`s (the operation catalogue);
 * - arbitraries.ts and profiles.ts: the generation (building blocks; the weights of each profile);
 * - normalize.ts: JSON values, placeholders and `stableStringify`;
 * - run.ts: engines, the per-run state, `attempt` and `rec`; interpret.ts dispatches each command to
 *   the file of its area: lifecycle.ts, signals.ts, admin.ts, flows.ts, scenarios.ts, budgets.ts,
 *   streams.ts, maintenance.ts;
 * - reads.ts: the reads after each command and the final sweep;
 * - compare.ts: the comparison, waivers and reports; runner.ts: running one sample;
 * - check.ts: the property (`checkDifferential`), replays and waiver checks.
 */
export {
  type Backoff,
  BASE_TIME,
  type BatchItem,
  CAPABILITIES,
  type Capability,
  type Command,
  type CommandTag,
  type Drive,
  type EndRef,
  HMAC,
  LANES,
  NEW,
  type Ref,
  type RetrySpec,
  type Sample,
  type Scenario,
  type SummaryPatch
} from "./commands.js"
export { SUMMARY_PATCHES } from "./arbitraries.js"
export {
  commandArbitrary,
  flowCommandArbitrary,
  type GenerationOptions,
  type Profile,
  sampleArbitrary
} from "./profiles.js"
export { type Json, Normalizer, stableStringify } from "./normalize.js"
export { type Engine, type EngineFactory, memoryFactory, type RunRecord, type StepRecord } from "./run.js"
export {
  compare,
  describeCommand,
  type Difference,
  type Divergence,
  formatDivergence,
  formatSample,
  jsonDifferences,
  type Waiver,
  waiverHits
} from "./compare.js"
export { type RunOptions, runSample, runSampleEffect } from "./runner.js"
export {
  type CheckOptions,
  type CheckResult,
  checkDifferential,
  checkWaiverRepros,
  diffSample,
  diffTestTimeout,
  DivergenceError,
  formatCoverage,
  parseSample,
  type WaiverCheck
} from "./check.js"
