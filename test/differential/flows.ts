/**
 * The interpreter, flows: creating, joining, staging and applying edges, join policies, sealing,
 * extending and cancelling flows. The scenario commands are in scenarios.ts.
 */
import { Duration, Effect, Either, Option, TestClock } from "effect"
import type { EngineBackend } from "../../src/EngineBackend.js"
import * as Ids from "../../src/Ids.js"
import type { EdgeId, ExecutionId, FlowId } from "../../src/Ids.js"
import { type Command, type EndRef, LANES, NEW, NS } from "./commands.js"
import { attempt, bytes, pickRecent, rec, skip, sortCancelFlow, type StagedEdge, type Step, type Stepped } from "./run.js"

type FlowCommand = Extract<
  Command,
  {
    readonly _tag:
      | "CreateFlow"
      | "AddToFlow"
      | "SetEdgeGroupPolicy"
      | "StageEdge"
      | "ApplyEdge"
      | "SealFlow"
      | "ExtendFlow"
      | "CancelFlow"
  }
>

export const flows = (s: Step, cmd: FlowCommand): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const { b, i, out, run, touched } = s
    switch (cmd._tag) {
      case "CreateFlow": {
        const existing = cmd.existing === undefined ? undefined : pickRecent(run.flows, cmd.existing)
        const flowId = existing ?? (run.mint("flow", i) as FlowId)
        const r = yield* attempt(run, b.createFlow({ flowId, namespace: NS, ...(cmd.sealed === true ? { sealed: true } : {}) }))
        if (existing === undefined) {
          run.flows.push(flowId)
          run.members.set(flowId, [])
        }
        touched.flows.push(flowId)
        return out(rec(run, r))
      }

      case "AddToFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        // prefer executions minted for this flow's partition
        const partition = Ids.flowPartition(flowId)
        const colocated = run.executions.filter((e) => Ids.executionPartition(e) === partition)
        const executionId = pickRecent(colocated.length > 0 ? colocated : run.executions, cmd.execution)
        if (executionId === undefined) return out(skip("no execution"))
        touched.flows.push(flowId)
        touched.executions.push(executionId)
        const r = yield* attempt(run, b.addExecutionToFlow({ flowId, executionId }))
        if (Either.isRight(r) && r.right._tag === "Added") run.members.get(flowId)?.push(executionId)
        return out(rec(run, r))
      }

      case "SetEdgeGroupPolicy": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        const members = run.members.get(flowId) ?? []
        const downstream = cmd.stray === undefined ?
          pickRecent(members.length > 0 ? members : run.executions, cmd.downstream) :
          pickRecent(colocated(run.executions, flowId), cmd.stray)
        if (downstream === undefined) return out(skip("no execution"))
        touched.flows.push(flowId)
        touched.executions.push(downstream)
        const r = yield* attempt(
          run,
          b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: downstream, policy: cmd.policy })
        )
        return out(rec(run, r))
      }

      case "StageEdge": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        const members = run.members.get(flowId) ?? []
        const pool = members.length >= 2 ? members : run.executions
        const upstream = pickRecent(pool, cmd.upstream)
        // the downstream defaults to a different member than the upstream
        const downstream = pickRecent(pool, cmd.downstream === cmd.upstream ? cmd.downstream + 1 : cmd.downstream)
        if (upstream === undefined || downstream === undefined) return out(skip("no execution"))
        touched.flows.push(flowId)
        touched.executions.push(upstream, downstream)
        const snapshot = yield* attempt(run, b.describeFlow(flowId))
        const revision = Either.isRight(snapshot) && Option.isSome(snapshot.right) ?
          snapshot.right.value.graphRevision :
          0
        const expectedGraphRevision = cmd.revision === "current" ? revision : revision === 0 ? 1 : revision - 1
        const reused = cmd.reuse === undefined ? undefined : pickRecent(run.edges.filter((e) => e.flowId === flowId), cmd.reuse)
        const edgeId = reused?.edgeId ?? (run.mint("edge", i) as EdgeId)
        const dataPassingRef = cmd.dataPassing ? "result" : undefined
        const stage = yield* attempt(
          run,
          b.stageDependencyEdge({
            flowId,
            edgeId,
            upstreamExecutionId: upstream,
            downstreamExecutionId: downstream,
            expectedGraphRevision,
            ...(dataPassingRef === undefined ? {} : { dataPassingRef })
          })
        )
        const edge: StagedEdge = { flowId, edgeId, upstream, downstream, dataPassingRef }
        run.edges.push(edge)
        if (!cmd.apply || Either.isLeft(stage)) return out({ stage: rec(run, stage) })
        const apply = yield* attempt(run, applyEdge(b, edge))
        return out({ stage: rec(run, stage), apply: rec(run, apply) })
      }

      case "ApplyEdge": {
        const picked = pickRecent(run.edges, cmd.edge)
        if (picked === undefined) return out(skip("no edge"))
        const other = cmd.stray === undefined ? undefined : pickRecent(colocated(run.executions, picked.flowId), cmd.stray.execution)
        const edge = other === undefined || cmd.stray === undefined ? picked : { ...picked, [cmd.stray.end]: other }
        touched.flows.push(edge.flowId)
        touched.executions.push(edge.upstream, edge.downstream)
        return out(rec(run, yield* attempt(run, applyEdge(b, edge))))
      }

      case "SealFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        touched.flows.push(flowId)
        return out(rec(run, yield* attempt(run, b.sealFlow({ flowId }))))
      }

      case "ExtendFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        const members = run.members.get(flowId) ?? []
        const fresh = cmd.member ? Ids.deterministicExecutionIdForFlow(flowId, run.mint("execution", i)) : undefined
        const end = (e: EndRef): ExecutionId | undefined => (e === NEW ? fresh : pickRecent(members, e))
        const edges: Array<StagedEdge> = []
        for (const [k, [from, to]] of cmd.edges.entries()) {
          const up = end(from)
          const down = end(to)
          if (up === undefined || down === undefined || up === down) continue
          edges.push({
            flowId,
            edgeId: run.mint("edge", i, k) as EdgeId,
            upstream: up,
            downstream: down,
            dataPassingRef: cmd.dataPassing ? "result" : undefined
          })
        }
        const reused = cmd.reuse === undefined ? undefined : pickRecent(run.edges.filter((e) => e.flowId === flowId), cmd.reuse)
        if (reused !== undefined && reused.upstream !== reused.downstream) edges.push(reused)
        if (fresh === undefined && edges.length === 0) return out(skip("nothing to add"))
        touched.flows.push(flowId)
        touched.executions.push(...edges.flatMap((e) => [e.upstream, e.downstream]))
        const r = yield* attempt(
          run,
          b.extendFlow({
            flowId,
            members: fresh === undefined ? [] : [{
              executionId: fresh,
              namespace: NS,
              laneId: LANES[0]!,
              executionKind: "diff",
              inputPayload: bytes(`input-${i}`)
            }],
            edges: edges.map((e) => ({
              edgeId: e.edgeId,
              upstreamExecutionId: e.upstream,
              downstreamExecutionId: e.downstream,
              ...(e.dataPassingRef === undefined ? {} : { dataPassingRef: e.dataPassingRef })
            })),
            joins: fresh === undefined || cmd.join === undefined ? [] : [{ downstreamExecutionId: fresh, policy: cmd.join }]
          })
        )
        if (Either.isRight(r) && r.right._tag === "Extended") {
          if (fresh !== undefined) {
            run.executions.push(fresh)
            members.push(fresh)
            touched.executions.push(fresh)
          }
          run.edges.push(...edges)
        }
        // a new member's creation time is distinct from the next one's (see harness.ts)
        yield* TestClock.adjust(Duration.millis(1))
        return out(rec(run, r))
      }

      case "CancelFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        touched.flows.push(flowId)
        touched.executions.push(...(run.members.get(flowId) ?? []))
        const r = yield* attempt(
          run,
          b.cancelFlow({ flowId, policy: cmd.policy, wait: { _tag: "NoWait" }, reason: `cancel flow at ${i}` })
        )
        return out(rec(run, r, sortCancelFlow))
      }
    }
  })

/** The executions on `flowId`'s partition (members of any flow or of none). */
const colocated = (executions: ReadonlyArray<ExecutionId>, flowId: FlowId): ReadonlyArray<ExecutionId> =>
  executions.filter((e) => Ids.executionPartition(e) === Ids.flowPartition(flowId))

export const applyEdge = (b: EngineBackend.Service, edge: StagedEdge) =>
  b.applyDependencyToChild({
    flowId: edge.flowId,
    edgeId: edge.edgeId,
    upstreamExecutionId: edge.upstream,
    downstreamExecutionId: edge.downstream,
    ...(edge.dataPassingRef === undefined ? {} : { dataPassingRef: edge.dataPassingRef })
  })
