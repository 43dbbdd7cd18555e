/**
 * Kahn's algorithm over a graph given by its nodes and edges: the nodes in an
 * order where every edge points forward (roots first, in the order given), or
 * `undefined` when the edges close a cycle.
 */
export const topologicalOrder = <N>(
  nodes: ReadonlyArray<N>,
  edges: ReadonlyArray<readonly [from: N, to: N]>
): Array<N> | undefined => {
  const indegree = new Map<N, number>(nodes.map((n) => [n, 0]))
  const outgoing = new Map<N, Array<N>>()
  for (const [from, to] of edges) {
    indegree.set(to, (indegree.get(to) ?? 0) + 1)
    const out = outgoing.get(from)
    if (out === undefined) outgoing.set(from, [to])
    else out.push(to)
  }
  const order: Array<N> = []
  const ready = nodes.filter((n) => indegree.get(n) === 0)
  for (let i = 0; i < ready.length; i++) {
    const n = ready[i]!
    order.push(n)
    for (const m of outgoing.get(n) ?? []) {
      const d = indegree.get(m)! - 1
      indegree.set(m, d)
      if (d === 0) ready.push(m)
    }
  }
  return order.length === nodes.length ? order : undefined
}
