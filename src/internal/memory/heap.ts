/**
 * A binary min-heap of `(score, seq, key)` entries, each with a value of the caller's (the
 * claimable index keeps the execution itself: no lookup by key). Entries are never removed
 * in place: readers validate an entry against the current state when they reach it and drop it
 * when it is stale (lazy deletion).
 */
export interface HeapEntry<V = undefined> {
  readonly score: number
  readonly seq: number
  readonly key: string
  readonly value: V
}

const less = <V>(a: HeapEntry<V>, b: HeapEntry<V>): boolean => a.score < b.score || (a.score === b.score && a.seq < b.seq)

export class MinHeap<V = undefined> {
  /** The binary heap: the entries pushed out of order. */
  private readonly items: Array<HeapEntry<V>> = []
  /**
   * The entries pushed in order (each scored no lower than the one before it), oldest first from
   * `runHead`: most indexes are fed in time order (claims in creation order, lease expiries,
   * retention), and those entries go in and out in O(1) instead of through the heap.
   */
  private run: Array<HeapEntry<V> | undefined> = []
  private runHead = 0
  private nextSeq = 0

  get size(): number {
    return this.items.length + this.run.length - this.runHead
  }

  push(score: number, key: string, value?: V): void {
    const entry: HeapEntry<V> = { score, seq: this.nextSeq++, key, value: value as V }
    const run = this.run
    // (the seq grows with every push: an entry appended to the run is after every entry in it)
    if (run.length === this.runHead || run[run.length - 1]!.score <= score) {
      run.push(entry)
      return
    }
    const items = this.items
    items.push(entry)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!less(items[i]!, items[parent]!)) break
      ;[items[i], items[parent]] = [items[parent]!, items[i]!]
      i = parent
    }
  }

  peek(): HeapEntry<V> | undefined {
    const first = this.run[this.runHead]
    const top = this.items[0]
    if (first === undefined) return top
    if (top === undefined) return first
    return less(top, first) ? top : first
  }

  pop(): HeapEntry<V> | undefined {
    const first = this.run[this.runHead]
    const top = this.items[0]
    if (first !== undefined && (top === undefined || !less(top, first))) {
      // the slot lets go of its entry at once (the array is cut down only now and then)
      this.run[this.runHead++] = undefined
      if (this.runHead === this.run.length) {
        this.run = []
        this.runHead = 0
      } else if (this.runHead > 1024 && this.runHead * 2 > this.run.length) {
        this.run = this.run.slice(this.runHead)
        this.runHead = 0
      }
      return first
    }
    if (top === undefined) return undefined
    const items = this.items
    const last = items.pop()!
    if (items.length > 0) {
      items[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < items.length && less(items[l]!, items[m]!)) m = l
        if (r < items.length && less(items[r]!, items[m]!)) m = r
        if (m === i) break
        ;[items[i], items[m]] = [items[m]!, items[i]!]
        i = m
      }
    }
    return top
  }

  /** Drops stale entries from the top; returns the first valid one. */
  peekValid(isValid: (e: HeapEntry<V>) => boolean): HeapEntry<V> | undefined {
    for (;;) {
      const top = this.peek()
      if (top === undefined || isValid(top)) return top
      this.pop()
    }
  }
}
