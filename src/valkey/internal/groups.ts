/**
 * Reads of several partitions in one call: on a standalone server every partition, on a cluster
 * the partitions whose slots one node serves (the functions registered `allow-cross-slot-keys`:
 * a call may read any slot its node holds). The groups follow the client's slot map; a call that
 * meets a slot served elsewhere (the map was stale) fails, and its caller asks each partition alone.
 */
import { keySlot } from "./client.js"
import type { CoreContext } from "./context.js"
import type { Cluster } from "./driver.js"

/** The partitions of `ask` (all when omitted) grouped by the node that serves them. */
export type PartitionGroups = (ask?: ReadonlyArray<number>) => ReadonlyArray<ReadonlyArray<number>>

export const makePartitionGroups = (ctx: Pick<CoreContext, "client" | "keys" | "N">): PartitionGroups => {
  const { client, keys, N } = ctx
  const all = Array.from({ length: N }, (_, p) => p)
  const slots = all.map((p) => keySlot(keys.flow(p)))
  return (ask = all) => {
    if (!client.isCluster) return ask.length === 0 ? [] : [ask]
    const map = (client.connection as Cluster).slots
    const byNode = new Map<string, Array<number>>()
    for (const p of ask) {
      const node = map[slots[p]!]?.[0] ?? `?${p}`
      const group = byNode.get(node)
      if (group === undefined) byNode.set(node, [p])
      else group.push(p)
    }
    return [...byNode.values()]
  }
}
