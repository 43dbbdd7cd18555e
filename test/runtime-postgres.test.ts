// The worker, reconciler and producer suites against the Postgres layer, time from Effect's Clock so
// that TestClock drives them. Each test builds its own pool over one schema, dropped when the file ends.
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Redacted } from "effect"
import { afterAll, inject } from "vitest"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { LISTEN_APPLICATION_NAME } from "../src/postgres/internal/wakeups.js"
import { producerSuite } from "./producer/suite.js"
import { reconcilerSuite } from "./reconciler/suite.js"
import { workerSuite } from "./worker/suite.js"
import { wakeupSuite } from "./worker/wakeups.js"
import { testHmacSecret } from "./support/hmac.js"
import { traceSuite } from "./support/trace.js"

const schema = `ff_runtime_${process.pid}_${Date.now().toString(36)}`

const client = PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 8 })

const layer = PostgresBackend.layer({ hmacSecret: testHmacSecret, schema, clock: "effect" }).pipe(Layer.provide(client))

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

workerSuite("postgres", layer, options)
wakeupSuite("postgres", layer, { ...options, dropWakeups })
reconcilerSuite("postgres", layer, options)
producerSuite("postgres", layer, options)
traceSuite("postgres", layer)
