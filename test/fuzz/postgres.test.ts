// The fuzz test against the Postgres layer (its own schema, dropped afterwards).
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Redacted } from "effect"
import { inject } from "vitest"
import * as PostgresBackend from "../../src/postgres/PostgresBackend.js"
import { fuzzSuite } from "./harness.js"

const schema = `ff_fuzz_${process.pid}_${Date.now().toString(36)}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 8 })))

fuzzSuite("postgres", PostgresBackend.layer({ schema, clock: "effect", hmacSecret: "none" }).pipe(Layer.provide(client)), { runs: 400 })
