/**
 * What the `footprint` scenario reads from the servers: Valkey's `used_memory` and the
 * `MEMORY USAGE` of every key under a prefix, grouped by key shape; PostgreSQL's relation sizes
 * of a schema (each table's heap, its TOAST / free-space / visibility maps, each index), row
 * counts, average column widths and the WAL position.
 */

/** One record kind (a key shape, a table, an index) and what it holds. */
export interface RecordRow {
  readonly record: string
  /** Keys, rows or entries of the record. */
  readonly items: number
  readonly bytes: number
  readonly note?: string
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g

/** The shape of a key: partitions, execution ids, uuids, id-index and eligible bucket bounds and numbers replaced by placeholders. */
export const keyShape = (key: string, prefix: string): string =>
  key.slice(prefix.length)
    .replace(/\{fp:\d+\}:[0-9a-f-]{36}/g, "<eid>")
    .replace(/:i:ids:[0-9a-f]{32}$/, ":i:ids:<bound>")
    .replace(/:(eb[12]):\d{17}[0-9a-f]{32}$/, ":$1:<bound>")
    .replace(/\{(fp|b|q):\d+\}/g, "{$1:N}")
    .replace(UUID, "<uuid>")
    .replace(/:\d+(?=:|$)/g, ":<n>")

interface ShapeStats {
  keys: number
  /** Keys queued for measuring or measured. */
  taken: number
  measured: number
  measuredBytes: number
  type: string
  encoding: string
  sample: string
}

export interface KeyShape {
  readonly shape: string
  readonly keys: number
  /** `MEMORY USAGE` summed: measured for every key, or the mean of a sample times the key count. */
  readonly bytes: number
  readonly sampled: boolean
  readonly type: string
  readonly encoding: string
  readonly sample: string
}

/** Keys of one shape measured one by one at most; beyond it their mean stands for the rest. */
const SAMPLE_PER_SHAPE = 2_000

type Redis = import("iovalkey").Redis

export interface ValkeyProbe {
  readonly usedMemory: () => Promise<number>
  /** Every key matching `<prefix>:*`, grouped by shape. */
  readonly keys: (prefix: string) => Promise<ReadonlyArray<KeyShape>>
  /** A hash's fields and the length of each value (a sample record's layout). */
  readonly hashLayout: (key: string) => Promise<ReadonlyArray<readonly [string, number]>>
  readonly dropKeys: (prefix: string) => Promise<void>
  readonly close: () => void
}

export const valkeyProbe = async (url: string): Promise<ValkeyProbe> => {
  const { Redis } = await import("iovalkey")
  const client: Redis = new Redis(url)
  const info = async () => {
    const text = await client.info("memory")
    const field = (name: string) => Number(new RegExp(`(?:^|\\n)${name}:(\\d+)`).exec(text)?.[1] ?? Number.NaN)
    return { used: field("used_memory"), lazyfree: field("lazyfree_pending_objects") }
  }
  const settle = async () => {
    // an UNLINKed key is freed by a background thread; a reading waits for it
    for (let i = 0; i < 100; i++) {
      const { lazyfree } = await info()
      if (!(lazyfree > 0)) break
      await new Promise((r) => setTimeout(r, 50))
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  return {
    usedMemory: async () => {
      await settle()
      return (await info()).used
    },
    keys: async (prefix) => {
      const shapes = new Map<string, ShapeStats>()
      const pending: Array<[string, ShapeStats]> = []
      let cursor = "0"
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 2000)
        cursor = next
        for (const key of keys) {
          const shape = keyShape(key, prefix)
          let s = shapes.get(shape)
          if (s === undefined) {
            s = { keys: 0, taken: 0, measured: 0, measuredBytes: 0, type: "", encoding: "", sample: key }
            shapes.set(shape, s)
          }
          s.keys++
          if (s.taken < SAMPLE_PER_SHAPE) {
            s.taken++
            pending.push([key, s])
          }
        }
        if (pending.length >= 1000 || cursor === "0") await measure(client, pending.splice(0))
      } while (cursor !== "0")
      for (const s of shapes.values()) {
        const head = client.pipeline()
        head.type(s.sample)
        head.call("OBJECT", "ENCODING", s.sample)
        const [[, type], [, encoding]] = (await head.exec()) as Array<[unknown, string]> as [
          [unknown, string],
          [unknown, string]
        ]
        s.type = type
        s.encoding = encoding
      }
      return [...shapes.entries()].map(([shape, s]) => ({
        shape,
        keys: s.keys,
        bytes: s.measured === 0 ? 0 : Math.round((s.measuredBytes / s.measured) * s.keys),
        sampled: s.measured < s.keys,
        type: s.type,
        encoding: s.encoding,
        sample: s.sample
      }))
    },
    hashLayout: async (key) => {
      const flat = await client.hgetallBuffer(key)
      return Object.entries(flat).map(([field, value]) => [field, value.length] as const)
    },
    dropKeys: async (prefix) => {
      let cursor = "0"
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 2000)
        if (keys.length > 0) await client.unlink(...keys)
        cursor = next
      } while (cursor !== "0")
    },
    close: () => client.disconnect()
  }
}

/** `MEMORY USAGE … SAMPLES 0` (every element counted) of the keys, in one pipeline. */
const measure = async (client: Redis, batch: ReadonlyArray<[string, ShapeStats]>) => {
  if (batch.length === 0) return
  const p = client.pipeline()
  for (const [key] of batch) p.call("MEMORY", "USAGE", key, "SAMPLES", "0")
  const replies = (await p.exec()) ?? []
  for (const [i, [, s]] of batch.entries()) {
    const bytes = Number(replies[i]?.[1] ?? Number.NaN)
    if (!Number.isFinite(bytes)) continue
    s.measured++
    s.measuredBytes += bytes
  }
}

/** The key shapes' growth between two listings (shapes that did not change are left out). */
export const keyDelta = (
  before: ReadonlyArray<KeyShape>,
  after: ReadonlyArray<KeyShape>
): ReadonlyArray<RecordRow> => {
  const base = new Map(before.map((s) => [s.shape, s]))
  return after.flatMap((s) => {
    const b = base.get(s.shape)
    const items = s.keys - (b?.keys ?? 0)
    const bytes = s.bytes - (b?.bytes ?? 0)
    if (items === 0 && bytes === 0) return []
    return [{
      record: s.shape,
      items,
      bytes,
      note: `${s.type} ${s.encoding}${s.sampled ? `, ${SAMPLE_PER_SHAPE} sampled` : ""}`
    }]
  }).sort((a, b) => b.bytes - a.bytes)
}

// ---------------------------------------------------------------------------
// PostgreSQL

type PgClient = import("pg").Client

export interface Relation {
  readonly table: string
  /** `<table>` (its heap), `<table> (toast, fsm, vm)`, or `<table> / <index>`. */
  readonly name: string
  readonly bytes: number
  /** Rows of the table (heap rows only). */
  readonly rows?: number
}

export interface PgProbe {
  readonly relations: (schema: string) => Promise<ReadonlyArray<Relation>>
  /** The average width of each column of a table's rows (`pg_column_size`), and of the whole row. */
  readonly columns: (schema: string, table: string) => Promise<ReadonlyArray<readonly [string, number]>>
  /** The current WAL insert position, in bytes from 0/0 (the write position lags behind it). */
  readonly walLsn: () => Promise<bigint>
  readonly vacuumFull: (schema: string) => Promise<void>
  readonly dropSchema: (schema: string) => Promise<void>
  readonly close: () => Promise<void>
}

const ident = (name: string) => `"${name.replaceAll("\"", "\"\"")}"`

export const pgProbe = async (url: string): Promise<PgProbe> => {
  const { default: pg } = await import("pg")
  const client: PgClient = new pg.Client({ connectionString: url })
  await client.connect()
  const tables = async (schema: string) =>
    (await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'm') ORDER BY 1`,
      [schema]
    )).rows.map((r) => r.name)
  return {
    relations: async (schema) => {
      const heaps = (await client.query<{ name: string; main: string; whole: string }>(
        `SELECT c.relname AS name, pg_relation_size(c.oid) AS main, pg_table_size(c.oid) AS whole
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')`,
        [schema]
      )).rows
      const indexes = (await client.query<{ name: string; tab: string; bytes: string }>(
        `SELECT c.relname AS name, t.relname AS tab, pg_relation_size(c.oid) AS bytes
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid
          WHERE n.nspname = $1 AND c.relkind = 'i'`,
        [schema]
      )).rows
      const out: Array<Relation> = []
      for (const h of heaps) {
        const rows = Number((await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${ident(schema)}.${ident(h.name)}`
        )).rows[0]!.n)
        out.push({ table: h.name, name: h.name, bytes: Number(h.main), rows })
        out.push({ table: h.name, name: `${h.name} (toast, fsm, vm)`, bytes: Number(h.whole) - Number(h.main) })
      }
      for (const i of indexes) out.push({ table: i.tab, name: `${i.tab} / ${i.name}`, bytes: Number(i.bytes) })
      return out
    },
    columns: async (schema, table) => {
      const cols = (await client.query<{ name: string }>(
        `SELECT attname AS name FROM pg_attribute
          WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [`${ident(schema)}.${ident(table)}`]
      )).rows.map((r) => r.name)
      if (cols.length === 0) return []
      const row = (await client.query(
        `SELECT avg(pg_column_size(t.*))::float8 AS "(row)", ${
          cols.map((c) => `coalesce(avg(pg_column_size(t.${ident(c)})), 0)::float8 AS ${ident(c)}`).join(", ")
        } FROM ${ident(schema)}.${ident(table)} t`
      )).rows[0] as Record<string, number>
      return Object.entries(row).map(([k, v]) => [k, Number(v)] as const)
    },
    walLsn: async () => {
      const r = await client.query<{ b: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text AS b`)
      return BigInt(r.rows[0]!.b.split(".")[0]!)
    },
    vacuumFull: async (schema) => {
      for (const t of await tables(schema)) await client.query(`VACUUM FULL ${ident(schema)}.${ident(t)}`)
    },
    dropSchema: async (schema) => {
      await client.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`)
    },
    close: () => client.end()
  }
}

/** The relations' growth between two readings (relations that did not change are left out). */
export const relationDelta = (
  before: ReadonlyArray<Relation>,
  after: ReadonlyArray<Relation>
): ReadonlyArray<RecordRow> => {
  const base = new Map(before.map((r) => [r.name, r]))
  return after.flatMap((r) => {
    const b = base.get(r.name)
    const bytes = r.bytes - (b?.bytes ?? 0)
    const rows = r.rows === undefined ? undefined : r.rows - (b?.rows ?? 0)
    if (bytes === 0 && (rows ?? 0) === 0) return []
    return [{
      record: r.name,
      items: rows ?? 0,
      bytes,
      ...(rows === undefined ? {} : { note: `${r.rows} rows` })
    }]
  }).sort((a, b) => b.bytes - a.bytes)
}

// ---------------------------------------------------------------------------
// footprints

/** What `count` items in one state cost a store. */
export interface Footprint {
  readonly system: string
  readonly state: string
  readonly count: number
  /** The store's growth over the baseline: `used_memory`, relation sizes, or the heap. */
  readonly bytes: number
  readonly measure: string
  /** PostgreSQL: the same tables after `VACUUM FULL` (live rows only, at each table's fillfactor). */
  readonly liveBytes?: number
  readonly records: ReadonlyArray<RecordRow>
  /** Record layouts: the fields of a sample hash, the average column widths of a table. */
  readonly details: ReadonlyArray<string>
}

/** WAL written by one phase of a run. */
export interface WalFigure {
  readonly system: string
  readonly phase: string
  readonly count: number
  readonly bytes: number
  /** A step of the submit → claim → complete path (summed into the WAL per task). */
  readonly task: boolean
}

export interface ValkeyBaseline {
  readonly used: number
  readonly keys: ReadonlyArray<KeyShape>
}

export const valkeyBaseline = async (probe: ValkeyProbe, prefix: string): Promise<ValkeyBaseline> => ({
  used: await probe.usedMemory(),
  keys: await probe.keys(prefix)
})

/** The growth of `prefix`'s keys and of `used_memory` since `base`, with the layout of each hash kept per item. */
export const valkeyFootprint = async (
  probe: ValkeyProbe,
  prefix: string,
  base: ValkeyBaseline,
  system: string,
  state: string,
  count: number
): Promise<Footprint> => {
  const used = await probe.usedMemory()
  const keys = await probe.keys(prefix)
  const records = keyDelta(base.keys, keys)
  const details: Array<string> = []
  for (const s of keys) {
    if (s.type !== "hash" || s.keys < count / 2) continue
    const layout = await probe.hashLayout(s.sample)
    const names = layout.reduce((a, [f]) => a + f.length, 0)
    const values = layout.reduce((a, [, n]) => a + n, 0)
    details.push(
      `${s.shape} (${s.encoding}, sample): ${layout.length} fields, names ${names} B, values ${values} B: ` +
        layout.map(([f, n]) => `${f}=${n}`).join(" ")
    )
  }
  return {
    system,
    state,
    count,
    bytes: used - base.used,
    measure: "used_memory delta",
    records: [
      ...records,
      {
        record: "(not in any key: the keyspace's hash table, allocator rounding, client buffers)",
        items: 0,
        bytes: used - base.used - records.reduce((a, r) => a + r.bytes, 0)
      }
    ],
    details
  }
}

/** The growth of `schema`'s relations since `base`, with the column widths of each table that grew by a row per item. */
export const pgFootprint = async (
  probe: PgProbe,
  schema: string,
  base: ReadonlyArray<Relation>,
  system: string,
  state: string,
  count: number,
  options: { readonly live?: boolean } = {}
): Promise<Footprint> => {
  const after = await probe.relations(schema)
  const records = relationDelta(base, after)
  const total = (rs: ReadonlyArray<Relation>) => rs.reduce((a, r) => a + r.bytes, 0)
  const details: Array<string> = []
  for (const r of after) {
    if (r.rows === undefined || r.rows < count / 2) continue
    const cols = [...await probe.columns(schema, r.table)].sort((a, b) => b[1] - a[1])
    details.push(`${r.table}: ${r.rows} rows, average widths (B): ${cols.map(([c, n]) => `${c}=${n.toFixed(1)}`).join(" ")}`)
  }
  let liveBytes: number | undefined
  if (options.live === true) {
    await probe.vacuumFull(schema)
    const live = await probe.relations(schema)
    liveBytes = total(live) - total(base)
    details.push(`after VACUUM FULL: ${
      relationDelta(base, live).map((r) => `${r.record}=${(r.bytes / count).toFixed(1)}`).join(" ")
    } (B per item)`)
  }
  return {
    system,
    state,
    count,
    bytes: total(after) - total(base),
    measure: "tables + indexes delta",
    ...(liveBytes === undefined ? {} : { liveBytes }),
    records,
    details
  }
}
