/**
 * The worker's metrics (exported from `Worker`, documented there) and the label sets it updates
 * them with.
 */
import { Metric, MetricBoundaries, MetricLabel } from "effect"

export const claimsTotal = Metric.counter("flowfabric_worker_claims_total", {
  description: "Executions a worker claimed, by lane and handle kind",
  incremental: true
})

export const tasksTotal = Metric.counter("flowfabric_worker_tasks_total", {
  description: "Attempts a worker finished, by kind and outcome",
  incremental: true
})

export const taskDurationMs = Metric.histogram(
  "flowfabric_worker_task_duration_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 20 }),
  "Attempt duration in milliseconds, by kind and outcome"
)

export const activeTasks = Metric.gauge("flowfabric_worker_active_tasks", {
  description: "Attempts a worker is running"
})

export const renewalsTotal = Metric.counter("flowfabric_worker_lease_renewals_total", {
  description: "Lease renewals by result",
  incremental: true
})

/** One set of metric labels. */
export type Labels = ReadonlyArray<MetricLabel.MetricLabel>

/** A worker's metric labels: the label set of `key1, value1, key2, value2, …`. */
export type LabelSets = (...pairs: ReadonlyArray<string>) => Labels

/**
 * Label sets by their values, made once: a metric caches its registry entry per label array, so
 * updating with the same array is a lookup where a new one (as `Metric.tagged` makes per update)
 * rebuilds and hashes the key.
 */
export const labelSets = (): LabelSets => {
  const sets = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  return (...pairs) => {
    const key = pairs.join("\u0000")
    let set = sets.get(key)
    if (set === undefined) {
      const labels: Array<MetricLabel.MetricLabel> = []
      for (let i = 0; i + 1 < pairs.length; i += 2) labels.push(MetricLabel.make(pairs[i]!, pairs[i + 1]!))
      set = labels
      sets.set(key, set)
    }
    return set
  }
}
