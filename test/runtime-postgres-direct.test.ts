// The wake-up suite against `layerPg`, whose pool of its own sends the create that claims for an
// idle worker at once (src/postgres/internal/direct.ts); time from Effect's Clock so that TestClock
// drives it. The suite's other layer, over a `SqlClient`, is in runtime-postgres.test.ts.
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Redacted } from "effect"
import { afterAll, inject } from "vitest"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { LISTEN_APPLICATION_NAME } from "../src/postgres/internal/wakeups.js"
import { wakeupSuite } from "./worker/wakeups.js"
import { testHmacSecret } from "./support/hmac.js"

const schema = `ff_runtime_direct_${process.pid}_${Date.now().toString(36)}`

const client = PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 2 })

const layer = PostgresBackend.layerPg({
  url: Redacted.make(inject("pgUrl")),
  maxConnections: 8,
  hmacSecret: testHmacSecret,
  schema,
  clock: "effect"
})

afterAll(() =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).pipe(
      Effect.provide(client),
      Effect.ignore
    )
  ))
const options = { settleMs: 5, timeout: 60_000 }

/** Ends the layer's LISTEN connection from the server side. */
const dropWakeups = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${LISTEN_APPLICATION_NAME}'`)
).pipe(Effect.provide(client), Effect.asVoid)

wakeupSuite("postgres (layerPg)", layer, { ...options, dropWakeups })
