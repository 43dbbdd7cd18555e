/**
 * Throwaway test servers: standalone Valkey, a 3-master Valkey Cluster and PostgreSQL,
 * each on a free 127.0.0.1 port with its own temp dir. A missing binary throws; it never skips.
 *
 * `startX()` always starts a fresh server (use it when a test needs to restart/kill it);
 * `acquireX()` prefers the FLOWFABRIC_*_URL environment variables and only starts one if unset.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants, readdirSync, rmSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const HOST = "127.0.0.1";

export interface ServerHandle {
  readonly url: string;
  /** Set when the server comes from a FLOWFABRIC_*_URL variable (then `stop()` does nothing). */
  readonly external?: true;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// process helpers

interface RunOptions {
  readonly cwd?: string;
  readonly asPostgres?: boolean;
  readonly timeoutMs?: number;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** PostgreSQL refuses to run as root: run its tools as the postgres user then. */
const asPostgresArgv = (file: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  isRoot() ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, [...args]];

/** Runs a command to completion; rejects with its output on non-zero exit. */
const run = (file: string, args: ReadonlyArray<string>, options: RunOptions = {}): Promise<string> => {
  const [cmd, argv] = options.asPostgres === true ? asPostgresArgv(file, args) : [file, [...args]];
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      argv,
      { cwd: options.cwd ?? os.tmpdir(), timeout: options.timeoutMs ?? 60_000, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${[cmd, ...argv].join(" ")} failed: ${error.message}\n${stdout}${stderr}`.trim()));
        } else {
          resolve(stdout);
        }
      }
    );
  });
};

const findOnPath = (name: string): string | undefined => {
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
};

const requireBinary = (name: string, hint: string): string => {
  const found = findOnPath(name);
  if (found === undefined) {
    throw new Error(`Test server binary '${name}' not found on PATH. ${hint}`);
  }
  return found;
};

const valkeyHint = "Install valkey-server and valkey-tools (see .ci/run).";
const valkeyServerBin = (): string => requireBinary("valkey-server", valkeyHint);
const valkeyCliBin = (): string => requireBinary("valkey-cli", valkeyHint);

/** Newest /usr/lib/postgresql/<v>/bin (Debian), or $PGBIN, or the directory of `initdb` on PATH. */
export const pgBinDir = (): string => {
  const explicit = process.env["PGBIN"];
  if (explicit !== undefined && explicit !== "") {
    try {
      accessSync(path.join(explicit, "initdb"), fsConstants.X_OK);
      accessSync(path.join(explicit, "pg_ctl"), fsConstants.X_OK);
    } catch {
      throw new Error(`PGBIN=${explicit} does not contain executable initdb and pg_ctl`);
    }
    return explicit;
  }
  const root = "/usr/lib/postgresql";
  let versions: Array<string> = [];
  try {
    versions = readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    // no Debian layout
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = path.join(root, v, "bin");
    try {
      accessSync(path.join(dir, "initdb"), fsConstants.X_OK);
      accessSync(path.join(dir, "pg_ctl"), fsConstants.X_OK);
      return dir;
    } catch {
      // incomplete install
    }
  }
  const initdb = findOnPath("initdb");
  if (initdb !== undefined) return path.dirname(initdb);
  throw new Error(
    "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH. " +
      "Install the 'postgresql' package (see .ci/run) or set PGBIN."
  );
};

const makeTempDir = async (prefix: string): Promise<string> => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `flowfabric-${prefix}-`));
  await fs.chmod(dir, 0o755); // mkdtemp is 0700; postgres must traverse it
  return dir;
};

/** The last lines of a server log; for a crash, the start of its report (the stack trace) instead. */
const tail = async (file: string, lines = 20): Promise<string> => {
  try {
    const all = (await fs.readFile(file, "utf8")).split("\n");
    const crash = all.findIndex((line) => line.includes("BUG REPORT START"));
    return (crash >= 0 ? all.slice(Math.max(0, crash - lines), crash + 60) : all.slice(-lines)).join("\n");
  } catch {
    return "(no log)";
  }
};

// Last-resort cleanup when the process exits without stopping its servers (e.g. a crashed test worker).
// Only synchronous work is possible in an "exit" handler.
const exitCleanups = new Set<() => void>();
const onProcessExit = (cleanup: () => void): (() => void) => {
  if (exitCleanups.size === 0) {
    process.once("exit", () => {
      // Newest first: server processes go before the dirs they live in.
      for (const fn of [...exitCleanups].reverse()) {
        try {
          fn();
        } catch {
          // best effort
        }
      }
    });
  }
  exitCleanups.add(cleanup);
  return () => exitCleanups.delete(cleanup);
};

const track = (child: ChildProcess): void => {
  const unregister = onProcessExit(() => child.kill("SIGKILL"));
  child.once("exit", unregister);
};

const waitForExit = (child: ChildProcess, timeoutMs: number): Promise<boolean> => {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
};

// ---------------------------------------------------------------------------
// ports

const listenOnce = (port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", () => resolve(undefined));
    server.listen({ port, host: HOST, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });

/** A currently free TCP port on 127.0.0.1 (bind port 0, close, reuse the number). */
export const freePort = async (): Promise<number> => {
  const port = await listenOnce(0);
  if (port === undefined) throw new Error("could not allocate a free port");
  return port;
};

const isPortFree = async (port: number): Promise<boolean> => (await listenOnce(port)) === port;

/** `count` distinct free ports whose cluster bus ports (+10000) are free as well. */
export const freeClusterPorts = async (count: number): Promise<Array<number>> => {
  const chosen: Array<number> = [];
  for (let attempt = 0; chosen.length < count && attempt < 200; attempt++) {
    const port = await freePort();
    const bus = port + 10000;
    const taken = new Set(chosen.flatMap((p) => [p, p + 10000]));
    if (bus > 65535 || taken.has(port) || taken.has(bus)) continue;
    if (await isPortFree(bus)) chosen.push(port);
  }
  if (chosen.length < count) throw new Error(`could not find ${count} free cluster ports`);
  return chosen;
};

// ---------------------------------------------------------------------------
// Valkey

/** valkey-server config directives, e.g. `{ appendonly: "yes", appendfsync: "always" }`. */
export type ValkeyConfig = Readonly<Record<string, string>>;

export interface ValkeyOptions {
  /** Extra/overriding directives. Default is no persistence (`save ""`, `appendonly no`). */
  readonly config?: ValkeyConfig;
}

export interface ValkeyServer extends ServerHandle {
  readonly host: string;
  readonly port: number;
  /** Working dir (RDB/AOF files, valkey.log); kept across restarts, removed by `stop()`. */
  readonly dir: string;
  readonly logFile: string;
  /** Config used by the next `start()`/`restart()`. */
  config: ValkeyConfig;
  readonly running: boolean;
  /** `SHUTDOWN NOSAVE` and wait for the process to exit. The dir is kept. */
  shutdown(): Promise<void>;
  /** SIGKILL the process (crash simulation). The dir is kept. */
  kill(): Promise<void>;
  /** Start again on the same port with the same dir. */
  start(): Promise<void>;
  /** `shutdown()` then `start()`; `config` is merged into the current config first. */
  restart(config?: ValkeyConfig): Promise<void>;
  /** Run a command through valkey-cli and return its raw output. */
  cli(...args: ReadonlyArray<string>): Promise<string>;
}

const defaultValkeyConfig: ValkeyConfig = {
  save: "",
  appendonly: "no",
  "protected-mode": "no"
};

const valkeyArgs = (port: number, dir: string, config: ValkeyConfig): Array<string> => {
  const merged: Record<string, string> = {
    ...defaultValkeyConfig,
    ...config,
    port: String(port),
    bind: HOST,
    daemonize: "no",
    dir,
    logfile: path.join(dir, "valkey.log")
  };
  return Object.entries(merged).flatMap(([key, value]) => [`--${key}`, value]);
};

const valkeyCli = (port: number, args: ReadonlyArray<string>, timeoutMs = 10_000): Promise<string> =>
  run(valkeyCliBin(), ["-h", HOST, "-p", String(port), ...args], { timeoutMs });

/** Spawns valkey-server in the foreground and waits until it answers PING (not LOADING). */
const spawnValkey = async (port: number, dir: string, config: ValkeyConfig): Promise<ChildProcess> => {
  const logFile = path.join(dir, "valkey.log");
  const child = spawn(valkeyServerBin(), valkeyArgs(port, dir, config), { cwd: dir, stdio: "ignore" });
  let spawnError: Error | undefined;
  child.once("error", (error) => (spawnError = error));
  track(child);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (spawnError !== undefined) throw spawnError;
    if (child.exitCode !== null || child.signalCode !== null) {
      const status = child.exitCode ?? child.signalCode;
      throw new Error(`valkey-server on port ${port} exited early (${status}):\n${await tail(logFile)}`);
    }
    try {
      if ((await valkeyCli(port, ["PING"], 2_000)).trim() === "PONG") return child;
    } catch {
      // not listening yet
    }
    await sleep(25);
  }
  child.kill("SIGKILL");
  throw new Error(`valkey-server on port ${port} did not become ready:\n${await tail(logFile)}`);
};

const shutdownValkeyProcess = async (port: number, child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // valkey-cli exits non-zero when the server drops the connection; that is the expected outcome.
  await valkeyCli(port, ["SHUTDOWN", "NOSAVE"]).catch(() => undefined);
  if (!(await waitForExit(child, 10_000))) {
    child.kill("SIGKILL");
    await waitForExit(child, 5_000);
  }
};

/** Starts a standalone valkey-server on a free port in a fresh temp dir. */
export const startValkey = async (options: ValkeyOptions = {}): Promise<ValkeyServer> => {
  valkeyServerBin();
  valkeyCliBin();
  const dir = await makeTempDir("valkey");
  const unregisterExit = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  let config: ValkeyConfig = { ...options.config };
  let port = 0;
  let child: ChildProcess | undefined;
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await spawnValkey(port, dir, config);
    } catch (error) {
      if (attempt >= 3) {
        unregisterExit();
        await fs.rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  let current: ChildProcess | undefined = child;
  const alive = (): ChildProcess | undefined =>
    current !== undefined && current.exitCode === null && current.signalCode === null ? current : undefined;

  const handle: ValkeyServer = {
    host: HOST,
    port,
    dir,
    logFile: path.join(dir, "valkey.log"),
    url: `redis://${HOST}:${port}`,
    get config() {
      return config;
    },
    set config(next: ValkeyConfig) {
      config = next;
    },
    get running() {
      return alive() !== undefined;
    },
    async shutdown() {
      const c = alive();
      if (c !== undefined) await shutdownValkeyProcess(port, c);
    },
    async kill() {
      const c = alive();
      if (c !== undefined) {
        c.kill("SIGKILL");
        await waitForExit(c, 5_000);
      }
    },
    async start() {
      if (alive() !== undefined) throw new Error(`valkey on port ${port} is already running`);
      current = await spawnValkey(port, dir, config);
    },
    async restart(extra) {
      if (extra !== undefined) config = { ...config, ...extra };
      await handle.shutdown();
      await handle.start();
    },
    cli: (...args) => valkeyCli(port, args),
    async stop() {
      unregisterExit();
      await handle.shutdown();
      await fs.rm(dir, { recursive: true, force: true });
    }
  };
  return handle;
};

/** `SHUTDOWN NOSAVE`, then start again on the same port and dir (optionally with extra config). */
export const restartValkey = (server: ValkeyServer, config?: ValkeyConfig): Promise<void> => server.restart(config);

export interface ValkeyClusterServer extends ServerHandle {
  /** Master ports; `url` is `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`. */
  readonly ports: ReadonlyArray<number>;
  readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>;
  readonly dir: string;
  /** SIGKILL the node on `port` (crash simulation). Its dir (nodes.conf, AOF) is kept. */
  kill(port: number): Promise<void>;
  /** Start the node on `port` again, same dir and config. */
  start(port: number): Promise<void>;
  /** Run a command through valkey-cli against the node on `port`. */
  cli(port: number, ...args: ReadonlyArray<string>): Promise<string>;
}

const clusterStateOk = async (port: number): Promise<boolean> => {
  try {
    return (await valkeyCli(port, ["CLUSTER", "INFO"], 2_000)).includes("cluster_state:ok");
  } catch {
    return false;
  }
};

/**
 * Starts a Valkey Cluster of `masters` masters (default 3), no replicas, and waits for `cluster_state:ok`.
 * A free port can be taken by another process between its choice and the node's bind (suites run side
 * by side), so a failed start is tried again on fresh ports, as `startValkey` does, up to three times.
 */
export const startValkeyCluster = async (
  options: ValkeyOptions & { readonly masters?: number } = {}
): Promise<ValkeyClusterServer> => {
  valkeyServerBin();
  valkeyCliBin();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startValkeyClusterOnce(options);
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
};

const startValkeyClusterOnce = async (
  options: ValkeyOptions & { readonly masters?: number }
): Promise<ValkeyClusterServer> => {
  const ports = await freeClusterPorts(options.masters ?? 3);
  const root = await makeTempDir("valkey-cluster");
  const unregisterExit = onProcessExit(() => rmSync(root, { recursive: true, force: true }));
  const config: ValkeyConfig = {
    "cluster-enabled": "yes",
    "cluster-config-file": "nodes.conf",
    "cluster-node-timeout": "5000",
    ...options.config
  };
  const nodes = await Promise.allSettled(
    ports.map(async (port) => {
      const dir = path.join(root, String(port));
      await fs.mkdir(dir);
      return { port, child: await spawnValkey(port, dir, config) };
    })
  );
  const started = nodes.flatMap((n) => (n.status === "fulfilled" ? [n.value] : []));
  const stop = async (): Promise<void> => {
    unregisterExit();
    await Promise.all(started.map(({ port, child }) => shutdownValkeyProcess(port, child)));
    await fs.rm(root, { recursive: true, force: true });
  };
  const nodeOf = (port: number) => {
    const node = started.find((n) => n.port === port);
    if (node === undefined) throw new Error(`no cluster node on port ${port}`);
    return node;
  };
  try {
    for (const n of nodes) if (n.status === "rejected") throw n.reason;
    await run(
      valkeyCliBin(),
      ["--cluster", "create", ...ports.map((p) => `${HOST}:${p}`), "--cluster-replicas", "0", "--cluster-yes"],
      { timeoutMs: 60_000 }
    );
    const deadline = Date.now() + 60_000;
    for (const port of ports) {
      while (!(await clusterStateOk(port))) {
        if (Date.now() > deadline) throw new Error(`valkey cluster node ${port} never reached cluster_state:ok`);
        await sleep(50);
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    ports,
    nodes: ports.map((port) => ({ host: HOST, port })),
    dir: root,
    url: ports.map((p) => `${HOST}:${p}`).join(","),
    stop,
    async kill(port) {
      const node = nodeOf(port);
      if (node.child.exitCode === null && node.child.signalCode === null) {
        node.child.kill("SIGKILL");
        await waitForExit(node.child, 5_000);
      }
    },
    async start(port) {
      const node = nodeOf(port);
      if (node.child.exitCode === null && node.child.signalCode === null) throw new Error(`node ${port} is running`);
      node.child = await spawnValkey(port, path.join(root, String(port)), config);
    },
    cli: (port, ...args) => valkeyCli(port, args)
  };
};

// ---------------------------------------------------------------------------
// PostgreSQL

export const PG_DATABASE = "flowfabric";

export interface PostgresOptions {
  /** Extra postgresql.conf settings (values written verbatim, quote strings yourself). */
  readonly settings?: Readonly<Record<string, string>>;
  readonly database?: string;
}

export interface PostgresServer extends ServerHandle {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly binDir: string;
  /** `pg_ctl restart -m fast`. */
  restart(): Promise<void>;
  /** `pg_ctl stop` (default mode fast). The data dir is kept. */
  shutdown(mode?: "smart" | "fast" | "immediate"): Promise<void>;
  /** `pg_ctl start` on the same port and data dir. */
  start(): Promise<void>;
}

const postgresOwner = async (): Promise<{ uid: number; gid: number } | undefined> => {
  if (!isRoot()) return undefined;
  try {
    const uid = Number((await run("id", ["-u", "postgres"])).trim());
    const gid = Number((await run("id", ["-g", "postgres"])).trim());
    return { uid, gid };
  } catch {
    throw new Error("Running as root but there is no 'postgres' user: install the 'postgresql' package (see .ci/run).");
  }
};

/** initdb + pg_ctl start on a free port + createdb, in a fresh temp dir. Settings favour speed over durability. */
export const startPostgres = async (options: PostgresOptions = {}): Promise<PostgresServer> => {
  const binDir = pgBinDir();
  const bin = (name: string): string => path.join(binDir, name);
  const database = options.database ?? PG_DATABASE;
  const root = await makeTempDir("pg");
  const dataDir = path.join(root, "data");
  const socketDir = path.join(root, "run");
  const logFile = path.join(root, "postgres.log");
  const asPg: RunOptions = { asPostgres: true, cwd: root, timeoutMs: 120_000 };

  /** pg_ctl as the postgres user; failures carry the tail of the server log. */
  const pgCtl = (...args: ReadonlyArray<string>): Promise<string> =>
    run(bin("pg_ctl"), ["-D", dataDir, "-l", logFile, ...args], asPg).catch(async (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`${message}\n--- ${logFile} ---\n${await tail(logFile)}`);
    });
  const isRunning = (): Promise<boolean> =>
    run(bin("pg_ctl"), ["-D", dataDir, "status"], asPg).then(
      () => true,
      () => false
    );

  // pg_ctl daemonizes postgres, so it would outlive a crashed runner.
  const unregisterExit = onProcessExit(() => {
    const [cmd, argv] = asPostgresArgv(bin("pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
    execFileSync(cmd, argv, { cwd: root, stdio: "ignore", timeout: 10_000 });
    rmSync(root, { recursive: true, force: true });
  });

  let port = 0;
  try {
    const owner = await postgresOwner();
    await fs.mkdir(dataDir, { mode: 0o700 });
    await fs.mkdir(socketDir, { mode: 0o755 });
    await fs.writeFile(logFile, "");
    if (owner !== undefined) {
      for (const p of [dataDir, socketDir, logFile]) await fs.chown(p, owner.uid, owner.gid);
    }
    await run(
      bin("initdb"),
      ["-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
      asPg
    );
    // In postgresql.conf rather than -c flags, so that ALTER SYSTEM in a test still wins after a restart.
    const settings: Record<string, string> = {
      listen_addresses: `'${HOST}'`,
      unix_socket_directories: `'${socketDir}'`,
      fsync: "off",
      synchronous_commit: "off",
      full_page_writes: "off",
      max_connections: "200",
      ...options.settings
    };
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const conf = Object.entries({ ...settings, port: String(port) })
        .map(([key, value]) => `${key} = ${value}`)
        .join("\n");
      // Later lines win, so a retry simply appends a new port.
      await fs.appendFile(path.join(dataDir, "postgresql.conf"), `\n# flowfabric test settings\n${conf}\n`);
      try {
        await pgCtl("-w", "start");
        break;
      } catch (error) {
        if (attempt >= 3) throw error;
      }
    }
    await run(bin("createdb"), ["-h", HOST, "-p", String(port), "-U", "postgres", database], { cwd: root });
  } catch (error) {
    unregisterExit();
    if (await isRunning()) await pgCtl("-m", "immediate", "-w", "stop").catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
    throw error;
  }

  return {
    host: HOST,
    port,
    database,
    dataDir,
    logFile,
    binDir,
    url: `postgres://postgres@${HOST}:${port}/${database}`,
    restart: async () => {
      await pgCtl("-m", "fast", "-w", "restart");
    },
    shutdown: async (mode = "fast") => {
      if (await isRunning()) await pgCtl("-m", mode, "-w", "stop");
    },
    start: async () => {
      await pgCtl("-w", "start");
    },
    stop: async () => {
      unregisterExit();
      try {
        if (await isRunning()) await pgCtl("-m", "immediate", "-w", "stop");
      } finally {
        await fs.rm(root, { recursive: true, force: true });
      }
    }
  };
};

/** `pg_ctl restart -m fast` on the same port and data dir. */
export const restartPostgres = (server: PostgresServer): Promise<void> => server.restart();

// ---------------------------------------------------------------------------
// environment overrides

const external = (url: string): ServerHandle => ({ url, external: true, stop: async () => {} });

const fromEnv = (name: string): string | undefined => {
  const value = process.env[name];
  return value !== undefined && value.trim() !== "" ? value.trim() : undefined;
};

export const ENV_VALKEY_URL = "FLOWFABRIC_VALKEY_URL";
export const ENV_VALKEY_CLUSTER_URL = "FLOWFABRIC_VALKEY_CLUSTER_URL";
export const ENV_PG_URL = "FLOWFABRIC_PG_URL";

/** $FLOWFABRIC_VALKEY_URL if set (stop() is a no-op), otherwise a fresh `startValkey()`. */
export const acquireValkey = async (): Promise<ServerHandle> => {
  const url = fromEnv(ENV_VALKEY_URL);
  return url !== undefined ? external(url) : startValkey();
};

/** $FLOWFABRIC_VALKEY_CLUSTER_URL (comma-separated host:port list) if set, otherwise `startValkeyCluster()`. */
export const acquireValkeyCluster = async (): Promise<ServerHandle> => {
  const url = fromEnv(ENV_VALKEY_CLUSTER_URL);
  return url !== undefined ? external(url) : startValkeyCluster();
};

/** $FLOWFABRIC_PG_URL if set, otherwise `startPostgres()`. */
export const acquirePostgres = async (): Promise<ServerHandle> => {
  const url = fromEnv(ENV_PG_URL);
  return url !== undefined ? external(url) : startPostgres();
};

/** Parses a cluster url (`host:port,host:port`, optional `redis://` prefixes) into iovalkey startup nodes. */
export const parseClusterUrl = (url: string): Array<{ host: string; port: number }> =>
  url
    .split(",")
    .map((s) => s.trim().replace(/^(redis|valkey)s?:\/\//, "").replace(/\/.*$/, ""))
    .filter((s) => s !== "")
    .map((s) => {
      const i = s.lastIndexOf(":");
      const host = i > 0 ? s.slice(0, i) : s;
      const port = i > 0 ? Number(s.slice(i + 1)) : 6379;
      if (!Number.isInteger(port) || port <= 0) throw new Error(`invalid cluster node '${s}' in '${url}'`);
      return { host, port };
    });
