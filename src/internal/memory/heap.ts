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
  private readonly items: Array<HeapEntry<V>> = []
  private nextSeq = 0

  get size(): number {
    return this.items.length
  }

  push(score: number, key: string, value?: V): void {
    const items = this.items
    items.push({ score, seq: this.nextSeq++, key, value: value as V })
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!less(items[i]!, items[parent]!)) break
      ;[items[i], items[parent]] = [items[parent]!, items[i]!]
      i = parent
    }
  }

  peek(): HeapEntry<V> | undefined {
    return this.items[0]
  }

  pop(): HeapEntry<V> | undefined {
    const items = this.items
    const top = items[0]
    if (top === undefined) return undefined
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
