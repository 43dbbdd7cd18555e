/**
 * Ids the engine mints for itself (lease and attempt ids) come from the
 * store's generator, node:crypto, on every backend; ids a caller mints
 * (`Ids.new…`) come from Effect's `Random`, so seeded tests repeat them.
 */
import { randomUUID } from "node:crypto"
import type { AttemptId, LeaseId } from "../Ids.js"

export const storeLeaseId = (): LeaseId => randomUUID() as LeaseId

export const storeAttemptId = (): AttemptId => randomUUID() as AttemptId
