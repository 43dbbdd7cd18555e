/**
 * A statement sent at once on a connection of the layer's own `pg` pool (`layerPg`'s), outside
 * Effect: no @effect/sql statement (its span, scope and connection acquisition, each an effect
 * of its own), no fiber; its reply read in the driver's callback. The idle pickup's two calls use
 * it (docs/design/postgres.md, "Connections"): about half of the layer's own Node time on that
 * path went to those steps.
 */
import type { SqlError as SqlErrorType } from "@effect/sql/SqlError"
import { Either, Predicate } from "effect"
import { type Pg, SqlError } from "./driver.js"

export interface Direct {
  /**
   * Runs `text` with `values` on a connection of the pool as soon as the pool hands one out; `done`
   * gets the first row's `r`, or the failure as @effect/sql-pg reports it (a `SqlError` of the
   * same message and cause), once. `false`, and nothing sent, once the pool is closing.
   */
  readonly query: (
    text: string,
    values: ReadonlyArray<unknown>,
    done: (result: Either.Either<unknown, SqlErrorType>) => void
  ) => boolean
}

interface Corkable {
  readonly cork: () => void
  readonly uncork: () => void
}

/** The client's socket (`pg`'s `connection.stream`, not part of its typed API), when it can be corked. */
const socketOf = (client: Pg.ClientBase): Corkable | undefined => {
  const stream: unknown = (client as { readonly connection?: { readonly stream?: unknown } }).connection?.stream
  return Predicate.hasProperty(stream, "cork") && Predicate.hasProperty(stream, "uncork") &&
      typeof stream.cork === "function" && typeof stream.uncork === "function" ?
    stream as Corkable :
    undefined
}

export const makeDirect = (pool: Pg.Pool): Direct => ({
  query: (text, values, done) => {
    if (pool.ending) return false
    let settled = false
    const finish = (result: Either.Either<unknown, SqlErrorType>) => {
      if (settled) return
      settled = true
      done(result)
    }
    pool.connect((cause, client, release) => {
      if (cause !== undefined && cause !== null || client === undefined) {
        return finish(Either.left(
          new SqlError({ cause: cause ?? new Error("No client returned"), message: "Failed to acquire connection" })
        ))
      }
      let released = false
      const releaseOnce = (error?: Error) => {
        if (released) return
        released = true
        client.off("error", onError)
        release(error)
      }
      // (a connection that fails while the statement runs: the pool drops it, as @effect/sql-pg's does)
      const onError = (error: Error) => {
        releaseOnce(error)
        finish(Either.left(new SqlError({ cause: error, message: "Connection error" })))
      }
      client.once("error", onError)
      // `pg` writes the statement's five messages one `write` each: corked, they leave in one
      // system call and one segment, and the server reads them in one wake-up
      const socket = socketOf(client)
      socket?.cork()
      try {
        client.query<{ readonly r: unknown }>(text, values as Array<unknown>, (error, result) => {
          releaseOnce()
          finish(
            error !== undefined && error !== null ?
              Either.left(new SqlError({ cause: error, message: "Failed to execute statement" })) :
              Either.right(result.rows[0]?.r)
          )
        })
      } catch (error) {
        releaseOnce()
        finish(Either.left(new SqlError({ cause: error, message: "Failed to execute statement" })))
      } finally {
        socket?.uncork()
      }
    })
    return true
  }
})
