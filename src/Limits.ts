/**
 * The budget of bytes and counts of every call, the same on every backend
 * (docs/limits.md gives the reason for each). Caller input beyond a limit is
 * refused at the service boundary with a `Validation` error — `LimitExceeded`
 * unless the table in docs/limits.md names another kind — whose detail names
 * the limit (`Limits.tagsPerExecution`, …) and never repeats the value, and
 * nothing is written. Reads beyond a page budget return a shorter page.
 *
 * ```ts
 * import { Limits } from "flowfabric-effect"
 *
 * const chunks = Math.ceil(jobs.length / Limits.batchItems)
 * ```
 *
 * @since 0.1.0
 */
export const Limits = {
  /** An execution's input payload, a completion result. */
  payloadBytes: 8 * 1024 * 1024,
  /** Items of one batch call: `createExecutions`, `claimMany`, `completeMany`, `getExecutionInputs`. */
  batchItems: 1000,
  /** Payloads, tags and policies of one batch call together (`createExecutions`, `completeMany`, `createFlowGraph`, `extendFlow`). */
  batchBytes: 16 * 1024 * 1024,
  /** A stream frame. */
  frameBytes: 65_536,
  /** A signal payload. */
  signalPayloadBytes: 65_536,
  /** A `DurableSummary` document as stored after a patch (its compact JSON). */
  summaryDocumentBytes: 128 * 1024,
  /** `countLimit` of `readStream` / `tailStream`. */
  streamCountLimit: 10_000,
  /** Frames one `readStream` / `tailStream` page returns at most. */
  readPageFrames: 1000,
  /** Payload bytes of one `readStream` / `tailStream` page (a page always holds at least one frame). */
  readPageBytes: 1024 * 1024,
  /** Entries of one listing page (`listFlows`, `listLanes`, `listSuspended`, `listExecutions`, `listPendingWaitpoints`). */
  listPageItems: 1000,
  /** Index entries one `listLaneExecutions` page examines at most, over every partition (docs/design/reads.md#lane-queries). */
  laneScanItems: 2_000,
  /** Tags of one execution. */
  tagsPerExecution: 64,
  /** A tag key. */
  tagKeyBytes: 128,
  /** A tag value. */
  tagValueBytes: 4096,
  /** An execution policy, as its JSON. */
  policyBytes: 16_384,
  /** A name, an identity or a key: kinds, namespaces, worker ids, signal names, dimension names, dedup and idempotency keys, … */
  nameBytes: 256,
  /** Free text: progress messages, failure messages, cancel and revoke reasons, continuation pointers, data-passing refs. */
  textBytes: 4096,
  /** A waitpoint token, as presented with a signal. */
  tokenBytes: 512,
  /** A waitpoint key. */
  waitpointKeyBytes: 256,
  /** The hex text of an HMAC secret. */
  secretHexChars: 1024,
  /** Capability tokens of a worker or of a requirement. */
  capabilityTokens: 256,
  /** The joined (comma-separated) capability tokens. */
  capabilityBytes: 4096,
  /** Execution kinds one claim names (`ClaimArgs.kinds`, `ClaimForWorkerArgs.kinds`; a worker: its handlers). */
  claimKinds: 256,
  /** Waitpoints one `suspend` binds. */
  waitpointsPerSuspend: 16,
  /** Nodes of a composite resume condition (every member and count, leaves included). */
  conditionNodes: 64,
  /** Nesting of a composite resume condition. */
  conditionDepth: 4,
  /** Members of one `createFlowGraph`. */
  flowGraphMembers: 200,
  /** Edges of one `createFlowGraph`. */
  flowGraphEdges: 400,
  /** Tags of all the members of one `createFlowGraph` together. */
  flowGraphTags: 2000,
  /** New members of one `extendFlow`. */
  flowExtendMembers: 100,
  /** Edges of one `extendFlow`. */
  flowExtendEdges: 200,
  /** Tags of all the new members of one `extendFlow` together. */
  flowExtendTags: 1000,
  /** Members of one flow: a call that would add more (`addExecutionToFlow`, `extendFlow`) is refused. */
  flowMembers: 2000,
  /** Edges of one flow: a call that would stage more (`stageDependencyEdge`, `extendFlow`) is refused. */
  flowEdges: 4000,
  /** Dimensions of a budget, of one usage report. */
  budgetDimensions: 64,
  /** Runs of an execution's attempt history kept (the newest; older ones are dropped). */
  historyRuns: 20,
  /** The reason of a run in the attempt history, cut at a character boundary (UTF-8 bytes). */
  historyReasonBytes: 256,
  /** Events one `readEvents` page returns at most. */
  eventPageItems: 1000,
  /** How long events are kept (ms): older ones are trimmed by `trimRetention`. */
  eventRetentionMs: 3_600_000,
  /** Events a store keeps at most (the oldest beyond it are trimmed first). */
  eventsRetained: 1_000_000,
  /** An event offset, as passed back to `readEvents` (its text). */
  eventOffsetBytes: 4096
} as const

/** @since 0.1.0 */
export type LimitName = keyof typeof Limits
