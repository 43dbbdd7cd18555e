// Values provided by test/support/globalSetup.ts, read in tests with `inject("valkeyUrl")` etc.
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** Standalone valkey, e.g. `redis://127.0.0.1:41234`. */
    valkeyUrl: string;
    /** 3-master cluster, e.g. `127.0.0.1:40001,127.0.0.1:40002,127.0.0.1:40003` (see `parseClusterUrl`). */
    valkeyClusterUrl: string;
    /** e.g. `postgres://postgres@127.0.0.1:41235/flowfabric`. */
    pgUrl: string;
  }
}
