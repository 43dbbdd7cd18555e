/**
 * Flows, edges and join policies (docs/design/flows.md): membership, staging and applying edges with their errors,
 * all-of / any-of / quorum joins with cancel_remaining and let_run, skip
 * propagation inside the upstream's terminal operation, replay of skipped
 * members and the dependency-reconciliation safety net.
 *
 * One sub-area a file: flows-graph.ts (createFlowGraph, membership), flows-edges.ts (edges, edge group
 * policies), flows-joins.ts (joins, skip propagation, data passing, late edges, sibling cancellation),
 * flows-growth.ts (open and sealed flows, extendFlow, replay of members).
 */
import { describe } from "@effect/vitest"
import { flowsEdges } from "./flows-edges.js"
import { flowsGraph } from "./flows-graph.js"
import { flowsGrowth } from "./flows-growth.js"
import { flowsJoins } from "./flows-joins.js"
import type { Tester } from "./helpers.js"

export const flows = (t: Tester) =>
  describe("flows", () => {
    flowsGraph(t)
    flowsEdges(t)
    flowsJoins(t)
    flowsGrowth(t)
  })
