// Smoke test for the servers started by test/support/globalSetup.ts.
import { describe, expect, inject, it } from "@effect/vitest";
import { Effect } from "effect";
import { Cluster, Redis } from "iovalkey";
import pg from "pg";
import { parseClusterUrl } from "./support/servers.js";

/** `valkey_version` (valkey) or `redis_version` from `INFO server`. */
const serverVersion = (info: string): string | undefined =>
  /^valkey_version:(\S+)/m.exec(info)?.[1] ?? /^redis_version:(\S+)/m.exec(info)?.[1];

const atLeast = (version: string, major: number, minor: number): boolean => {
  const [ma = 0, mi = 0] = version.split(".").map(Number);
  return ma > major || (ma === major && mi >= minor);
};

const valkeyClient = Effect.acquireRelease(
  Effect.sync(() => new Redis(inject("valkeyUrl"), { lazyConnect: true, maxRetriesPerRequest: 1 })).pipe(
    Effect.tap((client) => Effect.promise(() => client.connect()))
  ),
  (client) => Effect.promise(() => client.quit())
);

const clusterClient = Effect.acquireRelease(
  Effect.async<Cluster>((resume) => {
    const cluster = new Cluster(parseClusterUrl(inject("valkeyClusterUrl")));
    cluster.once("ready", () => resume(Effect.succeed(cluster)));
    cluster.once("error", (error: Error) => resume(Effect.die(error)));
  }),
  (cluster) => Effect.promise(() => cluster.quit())
);

const pgClient = Effect.acquireRelease(
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: inject("pgUrl") });
    await client.connect();
    return client;
  }),
  (client) => Effect.promise(() => client.end())
);

describe("test servers", () => {
  it.scopedLive("valkey answers PING and is >= 7.2", () =>
    Effect.gen(function* () {
      const client = yield* valkeyClient;
      expect(yield* Effect.promise(() => client.ping())).toBe("PONG");
      const version = serverVersion(yield* Effect.promise(() => client.info("server")));
      expect(version).toBeDefined();
      expect(atLeast(version ?? "0", 7, 2)).toBe(true);
    })
  );

  it.scopedLive("valkey cluster is ready with 3 masters", () =>
    Effect.gen(function* () {
      const cluster = yield* clusterClient;
      expect(cluster.nodes("master")).toHaveLength(3);
      expect(yield* Effect.promise(() => cluster.ping())).toBe("PONG");
      // Keys spread over all slots must work through redirections.
      for (const key of ["a", "b", "c", "d", "e"]) {
        yield* Effect.promise(() => cluster.set(`smoke:${key}`, key));
        expect(yield* Effect.promise(() => cluster.get(`smoke:${key}`))).toBe(key);
      }
      const info = yield* Effect.promise(() => cluster.nodes("master")[0]!.info("server"));
      expect(atLeast(serverVersion(info) ?? "0", 7, 2)).toBe(true);
    })
  );

  it.scopedLive("postgres answers select 1", () =>
    Effect.gen(function* () {
      const client = yield* pgClient;
      const result = yield* Effect.promise(() => client.query<{ one: number }>("select 1 as one"));
      expect(result.rows).toEqual([{ one: 1 }]);
      const db = yield* Effect.promise(() => client.query<{ db: string }>("select current_database() as db"));
      expect(db.rows[0]?.db).toBe("flowfabric");
    })
  );
});
