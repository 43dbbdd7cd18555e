/**
 * The interpreter, lifecycle: creating executions (and joining a flow in the same command),
 * claiming them, and what a lease holder does with its handle (renew, progress, complete, fail,
 * cancel, delay, wait for children).
 */
import { Duration, Effect, Either, Option, TestClock } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, FlowId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import { clampPriority } from "../../src/internal/validation.js"
import { BACKLOG_LANE, type Command, LANES, NS, type RetrySpec, WORKERS } from "./commands.js"
import type { Json } from "./normalize.js"
import { attempt, bytes, now, payloadOf, pickHandle, pickRecent, rec, settle, skip, type Step, type Stepped } from "./run.js"

type LifecycleCommand = Extract<
  Command,
  {
    readonly _tag:
      | "CreateExecution"
      | "CreateExecutions"
      | "Backlog"
      | "Claim"
      | "Renew"
      | "Progress"
      | "Complete"
      | "CompleteAndClaim"
      | "CompleteBatch"
      | "Fail"
      | "Cancel"
      | "Delay"
      | "WaitChildren"
  }
>

const retryPolicy = (r: RetrySpec): M.RetryPolicy => {
  const backoff: M.BackoffStrategy | undefined = r.backoff === "fixed100" ?
    { type: "fixed", delayMs: 100 } :
    r.backoff === "fixed1000" ?
    { type: "fixed", delayMs: 1000 } :
    r.backoff === "exponential" ?
    { type: "exponential", initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 } :
    undefined
  return {
    maxRetries: r.maxRetries,
    ...(backoff === undefined ? {} : { backoff }),
    ...(r.onlyTransient ? { retryableCategories: ["transient"] } : {})
  }
}

export const lifecycle = (s: Step, cmd: LifecycleCommand): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const { b, i, out, run, touchHandle, touched, withHandle } = s
    switch (cmd._tag) {
      case "CreateExecution": {
        const t = yield* now
        const lane = LANES[cmd.lane % LANES.length]!
        const flow = cmd.flow === undefined ? undefined : pickRecent(run.flows, cmd.flow)
        const duplicate = cmd.duplicateOf === undefined ? undefined : pickRecent(run.executions, cmd.duplicateOf)
        const uuid = run.mint("execution", i)
        const executionId = duplicate ??
          (flow === undefined ?
            Ids.deterministicExecutionIdSolo(lane, uuid) :
            Ids.deterministicExecutionIdForFlow(flow, uuid))
        const policy: M.ExecutionPolicy = {
          ...(cmd.retry === undefined ? {} : { retryPolicy: retryPolicy(cmd.retry) }),
          ...(cmd.caps.length === 0 ? {} : { routingRequirements: { requiredCapabilities: [...cmd.caps] } }),
          ...(cmd.attemptTimeoutMs === undefined ? {} : { timeoutPolicy: { attemptTimeoutMs: cmd.attemptTimeoutMs } }),
          ...(cmd.maxReplayCount === undefined ? {} : { maxReplayCount: cmd.maxReplayCount }),
          ...(cmd.maxReclaimCount === undefined ? {} : { maxReclaimCount: cmd.maxReclaimCount }),
          ...(cmd.retentionMs === undefined ? {} : { streamPolicy: { retentionTtlMs: cmd.retentionMs } })
        }
        const args: M.CreateExecutionArgsInput = {
          executionId,
          namespace: NS,
          laneId: lane,
          executionKind: "diff",
          inputPayload: bytes(`input-${i}`),
          priority: cmd.priority,
          ...(Object.keys(policy).length === 0 ? {} : { policy }),
          ...(cmd.delayMs === undefined ? {} : { delayUntil: t + cmd.delayMs }),
          ...(cmd.deadlineMs === undefined ? {} : { executionDeadlineAt: t + cmd.deadlineMs }),
          ...(cmd.idempotencyKey === undefined ? {} : { idempotencyKey: cmd.idempotencyKey })
        }
        const r = yield* attempt(run, b.createExecution(args))
        if (duplicate === undefined) run.executions.push(executionId)
        touched.executions.push(executionId)
        if (Either.isRight(r) && r.right.executionId !== executionId) touched.executions.push(r.right.executionId)
        let joined: Json | undefined
        if (flow !== undefined && cmd.join) {
          touched.flows.push(flow)
          const added = yield* attempt(run, b.addExecutionToFlow({ flowId: flow, executionId }))
          if (Either.isRight(added) && added.right._tag === "Added") run.members.get(flow)?.push(executionId)
          joined = rec(run, added)
        }
        // distinct creation times keep the claim order specified (see harness.ts)
        yield* TestClock.adjust(Duration.millis(1))
        return out(joined === undefined ? rec(run, r) : { create: rec(run, r), join: joined })
      }

      case "CreateExecutions": {
        const t = yield* now
        const ids: Array<ExecutionId> = []
        const fresh: Array<boolean> = []
        const flows: Array<FlowId | undefined> = []
        const args = cmd.items.map((item, k): M.CreateExecutionArgsInput => {
          const lane = LANES[item.lane % LANES.length]!
          const flow = item.flow === undefined ? undefined : pickRecent(run.flows, item.flow)
          const duplicate = item.duplicateOf === "previous" ?
            ids[k - 1] :
            item.duplicateOf === undefined ?
            undefined :
            pickRecent(run.executions, item.duplicateOf)
          const uuid = run.mint("execution", i, k)
          const executionId = duplicate ??
            (flow === undefined ? Ids.deterministicExecutionIdSolo(lane, uuid) : Ids.deterministicExecutionIdForFlow(flow, uuid))
          ids.push(executionId)
          fresh.push(duplicate === undefined)
          flows.push(flow)
          // "gpu,ssd" is one token with a comma: InvalidCapabilities
          const caps = cmd.invalid === k ? ["gpu,ssd"] : item.caps
          const policy: M.ExecutionPolicy = {
            ...(item.retry === undefined ? {} : { retryPolicy: retryPolicy(item.retry) }),
            ...(caps.length === 0 ? {} : { routingRequirements: { requiredCapabilities: [...caps] } })
          }
          return {
            executionId,
            namespace: NS,
            laneId: lane,
            executionKind: "diff",
            inputPayload: bytes(`input-${i}-${k}`),
            priority: item.priority,
            ...(Object.keys(policy).length === 0 ? {} : { policy }),
            ...(item.delayMs === undefined ? {} : { delayUntil: t + item.delayMs }),
            ...(item.idempotencyKey === undefined ? {} : { idempotencyKey: item.idempotencyKey })
          }
        })
        const r = yield* attempt(run, b.createExecutions(args))
        for (let k = 0; k < ids.length; k++) {
          if (fresh[k]) run.executions.push(ids[k]!)
          touched.executions.push(ids[k]!)
        }
        const joins: Record<string, Json> = {}
        if (Either.isRight(r)) {
          const batch = new Map<ExecutionId, number>()
          for (const [k, created] of r.right.entries()) {
            if (created._tag === "Created") batch.set(created.executionId, clampPriority(cmd.items[k]!.priority))
          }
          for (const id of batch.keys()) run.batches.set(id, batch)
          for (const [k, created] of r.right.entries()) {
            if (created.executionId !== ids[k]) touched.executions.push(created.executionId)
            const flow = flows[k]
            if (flow === undefined || !cmd.items[k]!.join) continue
            touched.flows.push(flow)
            const added = yield* attempt(run, b.addExecutionToFlow({ flowId: flow, executionId: ids[k]! }))
            if (Either.isRight(added) && added.right._tag === "Added") run.members.get(flow)?.push(ids[k]!)
            joins[`join ${k}`] = rec(run, added)
          }
        }
        // the next creation time is distinct from the batch's (see harness.ts)
        yield* TestClock.adjust(Duration.millis(1))
        return out(Object.keys(joins).length === 0 ? rec(run, r) : { create: rec(run, r), ...joins })
      }

      case "Backlog": {
        // the claimed executions and the pages read are the result: claim order is compared
        const results: Record<string, Json> = {}
        let k = 0
        for (const [n, op] of cmd.ops.entries()) {
          if ("create" in op) {
            const args = op.create.map((priority): M.CreateExecutionArgsInput => {
              const executionId = Ids.deterministicExecutionIdSolo(BACKLOG_LANE, run.mint("execution", i, k))
              k++
              run.executions.push(executionId)
              return {
                executionId,
                namespace: NS,
                laneId: BACKLOG_LANE,
                executionKind: "diff",
                inputPayload: bytes(`backlog-${i}-${k}`),
                priority
              }
            })
            const r = yield* attempt(run, b.createExecutions(args))
            results[`${n} create`] = rec(run, r)
            // (a priority change keeps the batch's priorities distinct: see admin.ts)
            const batch = new Map(args.map((a) => [a.executionId as ExecutionId, a.priority ?? 0]))
            for (const id of batch.keys()) run.batches.set(id, batch)
            // the next creation time is distinct from the batch's (see harness.ts)
            yield* TestClock.adjust(Duration.millis(1))
          } else if ("claim" in op) {
            const r = yield* attempt(
              run,
              b.claimMany({
                lane: BACKLOG_LANE,
                capabilities: { tokens: [] },
                policy: { ...WORKERS[0], leaseTtlMs: 600_000 }
              }, op.claim)
            )
            if (Either.isLeft(r)) {
              results[`${n} claim`] = rec(run, r)
              continue
            }
            run.handles.push(...r.right)
            results[`${n} claim`] = { ok: r.right.map((h) => payloadOf(h)?.executionId ?? "?") }
          } else {
            const ids: Array<string> = []
            let failed: Json | undefined
            let cursor: string | undefined
            for (let page = 0; page < 40; page++) {
              const r = yield* attempt(
                run,
                b.listLaneExecutions({
                  laneId: BACKLOG_LANE,
                  states: ["waiting"],
                  order: op.list,
                  limit: 7,
                  ...(cursor === undefined ? {} : { cursor })
                })
              )
              if (Either.isLeft(r)) {
                failed = rec(run, r)
                break
              }
              ids.push(...r.right.executions.map((e) => e.executionId))
              cursor = r.right.nextCursor
              if (cursor === undefined) break
            }
            results[`${n} ${op.list}`] = failed ?? { ok: ids }
          }
        }
        return out(results)
      }

      case "Claim": {
        const lane = LANES[cmd.lane % LANES.length]!
        const worker = WORKERS[cmd.worker % WORKERS.length]!
        const r = yield* attempt(
          run,
          b.claim({
            lane,
            capabilities: { tokens: [...cmd.caps] },
            policy: { ...worker, leaseTtlMs: cmd.ttlMs }
          })
        )
        if (Either.isRight(r) && Option.isSome(r.right)) {
          run.handles.push(r.right.value)
          touchHandle(r.right.value)
        }
        return out(rec(run, r))
      }

      case "Renew":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(attempt(run, b.renew(h)), (r) => {
            settle(run, h, r, false)
            return rec(run, r)
          }))

      case "Progress":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(
            attempt(
              run,
              b.progress(h, {
                ...(cmd.percent === undefined ? {} : { percent: cmd.percent }),
                ...(cmd.message === undefined ? {} : { message: cmd.message })
              })
            ),
            (r) => rec(run, r)
          ))

      case "Complete":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(
            attempt(run, b.complete(h, cmd.payload === undefined ? undefined : { payload: bytes(cmd.payload) })),
            (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            }
          ))

      case "CompleteAndClaim": {
        const lane = LANES[cmd.lane % LANES.length]!
        const worker = WORKERS[cmd.worker % WORKERS.length]!
        const claim = { args: { lane, capabilities: { tokens: [...cmd.caps] }, policy: { ...worker, leaseTtlMs: 30_000 } }, max: cmd.max }
        const record = (h: M.Handle | undefined) =>
          Effect.map(
            attempt(
              run,
              b.completeAndClaim(
                h === undefined ? [] : [{ handle: h, ...(cmd.payload === undefined ? {} : { payload: bytes(cmd.payload) }) }],
                claim
              )
            ),
            (r) => {
              if (Either.isRight(r)) {
                if (h !== undefined) settle(run, h, Either.map(r, (x) => x.completed[0]!), true)
                for (const { handle } of r.right.claimed) {
                  run.handles.push(handle)
                  touchHandle(handle)
                }
              }
              return rec(
                run,
                Either.map(r, ({ claimed, completed }) => ({
                  completed: completed.map((o) => Either.isRight(o) ? "ok" : o.left._tag),
                  claimed: claimed.map(({ handle, input }) => ({ handle, input }))
                }))
              )
            }
          )
        if (cmd.none) return out(yield* record(undefined))
        return yield* withHandle(cmd.handle, record)
      }

      case "CompleteBatch": {
        const handles = cmd.handles.flatMap((r) => {
          const h = pickHandle(run, r)
          return h === undefined ? [] : [h]
        })
        if (handles.length === 0) return out(skip("no handle"))
        for (const h of handles) touchHandle(h)
        const items = handles.map((handle) => ({ handle, ...(cmd.payload === undefined ? {} : { payload: bytes(cmd.payload) }) }))
        const c = cmd.claim
        const r = yield* attempt(
          run,
          c === undefined ?
            Effect.map(b.completeMany(items), (completed) => ({ completed, claimed: [] })) :
            b.completeAndClaim(items, {
              args: {
                lane: LANES[c.lane % LANES.length]!,
                capabilities: { tokens: [...c.caps] },
                policy: { ...WORKERS[c.worker % WORKERS.length]!, leaseTtlMs: 30_000 }
              },
              max: c.max
            })
        )
        if (Either.isRight(r)) {
          // each item as its own complete: a refused one is spent only when its lease is lost
          r.right.completed.forEach((o, k) =>
            settle(run, handles[k]!, Either.isRight(o) ? Either.right(undefined) : Either.left({ error: o.left }), true)
          )
          for (const { handle } of r.right.claimed) {
            run.handles.push(handle)
            touchHandle(handle)
          }
        }
        return out(rec(
          run,
          Either.map(r, ({ claimed, completed }) => ({
            completed: completed.map((o) => Either.isRight(o) ? "ok" : `${o.left._tag}:${"kind" in o.left ? String(o.left.kind) : ""}`),
            claimed: claimed.map(({ handle, input }) => ({ handle, input }))
          }))
        ))
      }

      case "Fail":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(
            attempt(
              run,
              b.fail(h, {
                reason: {
                  message: `failed at ${i}`,
                  ...(cmd.category === undefined ? {} : { detail: bytes(cmd.category) })
                },
                classification: cmd.classification
              })
            ),
            (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            }
          ))

      case "Cancel":
        return yield* withHandle(
          cmd.handle,
          (h) =>
            Effect.map(attempt(run, b.cancel(h, { reason: `cancel at ${i}` })), (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            })
        )

      case "Delay":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.flatMap(now, (t) =>
            Effect.map(attempt(run, b.delay(h, { delayUntil: t + cmd.delayMs })), (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            })))

      case "WaitChildren":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(attempt(run, b.waitChildren(h)), (r) => {
            settle(run, h, r, true)
            return rec(run, r)
          }))
    }
  })
