/** The interpreter: runs one command against `run.engine`, in the file of its area. */
import { Effect } from "effect"
import { admin } from "./admin.js"
import { budgets } from "./budgets.js"
import type { Command } from "./commands.js"
import { flows } from "./flows.js"
import { lifecycle } from "./lifecycle.js"
import { maintenance } from "./maintenance.js"
import { laneReads } from "./reads.js"
import { makeStep, type Run, type Stepped } from "./run.js"
import { scenario } from "./scenarios.js"
import { signals } from "./signals.js"
import { streams } from "./streams.js"

export const interpret = (run: Run, cmd: Command, i: number): Effect.Effect<Stepped> =>
  Effect.suspend(() => {
    const s = makeStep(run, i)
    switch (cmd._tag) {
      case "CreateExecution":
      case "CreateExecutions":
      case "Backlog":
      case "Claim":
      case "Renew":
      case "Progress":
      case "Complete":
      case "CompleteAndClaim":
      case "CompleteBatch":
      case "Fail":
      case "Cancel":
      case "Delay":
      case "WaitChildren":
        return lifecycle(s, cmd)
      case "CreateWaitpoint":
      case "Suspend":
      case "DeliverSignal":
      case "ObserveSignals":
        return signals(s, cmd)
      case "RevokeLease":
      case "CancelExecution":
      case "ChangePriority":
      case "ReplayExecution":
        return admin(s, cmd)
      case "CreateFlow":
      case "AddToFlow":
      case "SetEdgeGroupPolicy":
      case "StageEdge":
      case "ApplyEdge":
      case "SealFlow":
      case "ExtendFlow":
      case "CancelFlow":
        return flows(s, cmd)
      case "LateEdge":
      case "FinishedFlow":
        return Effect.map(scenario(run, s.b, cmd, i, s.touched), s.out)
      case "CreateBudget":
      case "ReportUsage":
      case "ResetBudget":
        return budgets(s, cmd)
      case "AppendFrame":
      case "ReadStream":
        return streams(s, cmd)
      case "ListLane":
        return Effect.map(laneReads(run, cmd), s.out)
      case "Advance":
      case "Pass":
      case "Settle":
        return maintenance(s, cmd)
    }
  })
