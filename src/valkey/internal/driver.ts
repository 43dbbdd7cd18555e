/**
 * iovalkey, an optional peer dependency, loaded when `flowfabric-effect/valkey` is imported
 * (see src/internal/driver.ts).
 */
import type * as Iovalkey from "iovalkey"
import { importDriver } from "../../internal/driver.js"

const iovalkey = await importDriver("flowfabric-effect/valkey", [["iovalkey", "^0.4.0"]], () => import("iovalkey"))

export const Redis: typeof Iovalkey.Redis = iovalkey.Redis
export type Redis = Iovalkey.Redis
export const Cluster: typeof Iovalkey.Cluster = iovalkey.Cluster
export type Cluster = Iovalkey.Cluster
export type { ClusterOptions, RedisOptions } from "iovalkey"
export const Command: typeof Iovalkey.Command = iovalkey.Command
export type Command = Iovalkey.Command
