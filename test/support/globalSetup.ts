/**
 * vitest globalSetup: one standalone Valkey, one 3-master Valkey Cluster and one PostgreSQL for the whole run
 * (or the FLOWFABRIC_*_URL servers when set). Tests read the URLs with `inject("valkeyUrl")` etc.
 */
import type { TestProject } from "vitest/node";
import { acquirePostgres, acquireValkey, acquireValkeyCluster, type ServerHandle } from "./servers.js";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const began = performance.now();
  const timed = async (name: string, acquire: () => Promise<ServerHandle>): Promise<ServerHandle> => {
    const handle = await acquire();
    const origin = handle.external === true ? "from environment" : `${Math.round(performance.now() - began)} ms`;
    console.log(`[test servers] ${name}: ${handle.url} (${origin})`);
    return handle;
  };

  const results = await Promise.allSettled([
    timed("valkey", acquireValkey),
    timed("valkey cluster", acquireValkeyCluster),
    timed("postgres", acquirePostgres)
  ]);
  const handles = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const teardown = async (): Promise<void> => {
    await Promise.allSettled(handles.map((h) => h.stop()));
  };

  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
  if (failures.length > 0) {
    await teardown();
    throw new AggregateError(failures, `could not start test servers:\n${failures.map(String).join("\n")}`);
  }
  const [valkey, cluster, pg] = handles as [ServerHandle, ServerHandle, ServerHandle];
  project.provide("valkeyUrl", valkey.url);
  project.provide("valkeyClusterUrl", cluster.url);
  project.provide("pgUrl", pg.url);
  console.log(`[test servers] ready in ${Math.round(performance.now() - began)} ms`);

  return async () => {
    const stopping = performance.now();
    await teardown();
    console.log(`[test servers] stopped in ${Math.round(performance.now() - stopping)} ms`);
  };
}
