/**
 * Checks of caller input that every backend shares, so that bad input gets
 * the same `Validation` error everywhere and nothing is written.
 */
import { Either, ParseResult, Schema } from "effect"
import { invalidInput, validation, type Validation, type ValidationKind } from "../EngineError.js"
import { type LimitName, Limits } from "../Limits.js"
import { ExecutionPolicy } from "../Model.js"
import { compile, compileConstructor } from "./fastValidate.js"
import { inputProblem, MAX_NESTING, nestedDeeperThan, type RuleContext } from "./inputRules.js"
import { quote } from "./quote.js"
import type { CompositeBody, DeliverSignalArgs, ResumeCondition, SuspendArgs } from "../Model.js"

type Policy = typeof ExecutionPolicy.Type

/** Largest execution input or completion result, in bytes. */
export const MAX_PAYLOAD_BYTES = Limits.payloadBytes
/** Largest stream frame and signal payload, in bytes. */
export const MAX_FRAME_BYTES = Limits.frameBytes
export const MAX_SIGNAL_PAYLOAD_BYTES = Limits.signalPayloadBytes
export const MAX_CAPABILITY_TOKENS = Limits.capabilityTokens
/** Largest `max` of one `claimMany`, and of every batch. */
export const MAX_CLAIM_BATCH = Limits.batchItems
export const MAX_CAPABILITY_CSV_BYTES = Limits.capabilityBytes
export const MAX_WAITPOINT_KEY_BYTES = Limits.waitpointKeyBytes
export const MAX_COMPOSITE_DEPTH = Limits.conditionDepth
export const TIMEOUT_SKEW_TOLERANCE_MS = 600_000
export const PRIORITY_MIN = 0
export const PRIORITY_MAX = 9000

export const clampPriority = (p: number): number => Math.min(PRIORITY_MAX, Math.max(PRIORITY_MIN, Math.trunc(p)))

// ---------------------------------------------------------------------------
// Limits (src/Limits.ts, docs/limits.md): the detail names the limit, never the value
// ---------------------------------------------------------------------------

/** `LimitExceeded` for `what` of `op` past `limit`. */
export const overLimit = (op: string, what: string, limit: LimitName, unit: string): Validation =>
  validation("LimitExceeded", `${op}: ${what}: more than ${Limits[limit]} ${unit} (Limits.${limit})`)

/** Whether `s` takes more than `cap` UTF-8 bytes (a UTF-16 unit takes one to three). */
export const bytesOver = (s: string, cap: number): boolean =>
  s.length > cap ? true : s.length * 3 <= cap ? false : Buffer.byteLength(s, "utf8") > cap

/** A string field (anything else is left to the shape checks) at most `Limits[limit]` UTF-8 bytes long. */
export const checkBytes = (op: string, what: string, value: unknown, limit: LimitName): Validation | undefined =>
  typeof value === "string" && bytesOver(value, Limits[limit]) ? overLimit(op, what, limit, "bytes") : undefined

/** A count at most `Limits[limit]`. */
export const checkCount = (op: string, what: string, n: number, limit: LimitName): Validation | undefined =>
  n > Limits[limit] ? overLimit(op, what, limit, "entries") : undefined

/** A value that formats as a short quotation of the caller's value (see `quote`). */
class Quoted {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
}

/**
 * The same issue tree with every caller value replaced by its short quotation,
 * so that formatting costs nothing however big, deep or cyclic the value is.
 */
const quoteActuals = (issue: ParseResult.ParseIssue): ParseResult.ParseIssue => {
  switch (issue._tag) {
    case "Type":
      return new ParseResult.Type(issue.ast, new Quoted(quote(issue.actual)), issue.message)
    case "Forbidden":
      return new ParseResult.Forbidden(issue.ast, new Quoted(quote(issue.actual)), issue.message)
    case "Unexpected":
      return new ParseResult.Unexpected(new Quoted(quote(issue.actual)), issue.message)
    case "Missing":
      return issue
    case "Pointer":
      return new ParseResult.Pointer(issue.path, undefined, quoteActuals(issue.issue))
    case "Refinement":
      return new ParseResult.Refinement(issue.ast, new Quoted(quote(issue.actual)), issue.kind, quoteActuals(issue.issue))
    case "Transformation":
      return new ParseResult.Transformation(issue.ast, new Quoted(quote(issue.actual)), issue.kind, quoteActuals(issue.issue))
    case "Composite":
      return new ParseResult.Composite(
        issue.ast,
        new Quoted(quote(issue.actual)),
        Array.isArray(issue.issues) ?
          (issue.issues.map(quoteActuals) as unknown as readonly [ParseResult.ParseIssue, ...Array<ParseResult.ParseIssue>]) :
          quoteActuals(issue.issues as ParseResult.ParseIssue)
      )
  }
}

/** A caller's string as an error detail: itself when short, else its quotation. */
const echo = (s: string): string => (s.length <= 64 ? s : quote(s))

const formatIssue = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatIssueSync(quoteActuals(error.issue))
    .map((i) => (i.path.length > 0 ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ")

const validators = new WeakMap<object, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>()

const validatorOf = <A, I>(schema: Schema.Schema<A, I>) => {
  let v = validators.get(schema)
  if (v === undefined) {
    const schemaValidate = Schema.validateEither(schema as Schema.Schema<unknown, unknown>)
    const ast = schema.ast
    const refuse = (u: unknown, message: string) =>
      Either.left(new ParseResult.ParseError({ issue: new ParseResult.Type(ast, u, message) }))
    // Schema recurses into what it validates: a value nested deeper than MAX_NESTING, or cyclic, is
    // refused before it reaches it; and a value Schema cannot even inspect (it turns a union's tag
    // into a property key, which throws for an object without a prototype) is bad input too
    const slow = (u: unknown) => {
      if (nestedDeeperThan(u)) return refuse(u, `nested deeper than ${MAX_NESTING} levels`)
      try {
        return schemaValidate(u)
      } catch {
        return refuse(u, "a value that cannot be inspected (an object without a prototype, or one that throws)")
      }
    }
    const fast = compile(schema as Schema.Schema<unknown, unknown>)
    v = fast === undefined ? slow : (u) => {
      const valid = fast(u)
      return valid === undefined ? slow(u) : Either.right(valid)
    }
    validators.set(schema, v)
  }
  return v as (u: unknown) => Either.Either<A, ParseResult.ParseError>
}

type DefaultPlan = ReadonlyArray<readonly [key: PropertyKey, defaultValue: (() => unknown) | undefined]>

const defaultPlans = new WeakMap<Schema.Struct.Fields, DefaultPlan>()

/** Each key of `fields` in order, with its constructor default when it has one (computed once per schema). */
const defaultPlanOf = (fields: Schema.Struct.Fields): DefaultPlan => {
  let plan = defaultPlans.get(fields)
  if (plan === undefined) {
    plan = Reflect.ownKeys(fields).map((key) => {
      const field = fields[key as string]
      if (!Schema.isPropertySignature(field)) return [key, undefined] as const
      const ast = field.ast
      return [key, ast._tag === "PropertySignatureDeclaration" ? ast.defaultValue : ast.to.defaultValue] as const
    })
    defaultPlans.set(fields, plan)
  }
  return plan
}

const constructors = new WeakMap<object, ((input: object) => Record<string, unknown> | undefined) | null>()

/**
 * The one-pass fast constructor of `schema` (defaults and validation together, see
 * fastValidate.ts), or `undefined` when it has none. A value deeper than `MAX_NESTING` never
 * passes it: every compiled node is a known shape of the schema, and the schemas it compiles are
 * not recursive.
 */
const constructorOf = <F extends Schema.Struct.Fields>(schema: Schema.Struct<F>) => {
  let c = constructors.get(schema)
  if (c === undefined) {
    c = compileConstructor(schema, defaultPlanOf(schema.fields)) ?? null
    constructors.set(schema, c)
  }
  return c ?? undefined
}

/**
 * Fills constructor defaults, as `Struct.make` does. The result is built key
 * by key in field order (not by spreading the input), which keeps its shape
 * stable and validation fast; keys outside the schema are dropped.
 */
const withDefaults = (fields: Schema.Struct.Fields, input: object): Record<PropertyKey, unknown> => {
  const source = input as Record<PropertyKey, unknown>
  const out: Record<PropertyKey, unknown> = {}
  for (const [key, defaultValue] of defaultPlanOf(fields)) {
    let value = source[key]
    if (value === undefined) {
      if (defaultValue !== undefined) value = defaultValue()
      if (value === undefined && !(key in source)) continue
    }
    out[key] = value
  }
  return out
}

/**
 * Builds a value of `schema` from caller input: constructor defaults are
 * applied and the result is validated; a failure is a `Validation` error.
 */
export const construct = <F extends Schema.Struct.Fields>(
  op: string,
  schema: Schema.Struct<F>,
  input: unknown,
  kind: ValidationKind = "InvalidInput",
  rules?: RuleContext
): Either.Either<Schema.Struct.Type<F>, Validation> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return Either.left(validation(kind, `${op}: expected an object`))
  }
  const fast = constructorOf(schema)?.(input)
  const validated = fast !== undefined ?
    Either.right(fast as Schema.Struct.Type<F>) :
    Either.mapLeft(
      validatorOf(schema as unknown as Schema.Schema<Schema.Struct.Type<F>>)(withDefaults(schema.fields, input)),
      (e) => validation(kind, `${op}: ${formatIssue(e)}`)
    ) as Either.Either<Schema.Struct.Type<F>, Validation>
  return rules === undefined ?
    validated :
    Either.flatMap(validated, (a) => obeysRules(op, schema as unknown as Schema.Schema<unknown>, a, kind, rules)) as typeof validated
}

/** Validates a value already in its typed form. */
export const check = <A, I>(
  op: string,
  schema: Schema.Schema<A, I>,
  input: unknown,
  kind: ValidationKind = "InvalidInput",
  rules?: RuleContext
): Either.Either<A, Validation> => {
  const validated = Either.mapLeft(validatorOf(schema)(input), (e) => validation(kind, `${op}: ${formatIssue(e)}`))
  return rules === undefined ? validated : Either.flatMap(validated, (a) => obeysRules(op, schema, a, kind, rules))
}

/** `value` (validated by `schema`) if it obeys the rules of every caller value (inputRules.ts). */
export const obeysRules = <A, I, R>(
  op: string,
  schema: Schema.Schema<A, I, R>,
  value: A,
  kind: ValidationKind,
  rules: RuleContext
): Either.Either<A, Validation> => {
  const problem = inputProblem(schema, value, rules)
  return problem === undefined ? Either.right(value) : Either.left(validation(kind, `${op}: ${problem}`))
}

// ---------------------------------------------------------------------------
// Capabilities (docs/design/executions.md#capabilities)
// ---------------------------------------------------------------------------

/** The answer for no tokens (most claims and creates): one value, nothing allocated. */
const NO_TOKENS: Either.Either<ReadonlyArray<string>, Validation> = Either.right(Object.freeze([]))

/** Sorted, de-duplicated tokens, or the bound they break. */
export const checkCapabilities = (
  side: "worker" | "required",
  tokens: unknown
): Either.Either<ReadonlyArray<string>, Validation> => {
  if (Array.isArray(tokens) && tokens.length === 0) return NO_TOKENS
  const fail = (reason: string) => Either.left(validation("InvalidCapabilities", `${side}:${reason}`))
  if (!Array.isArray(tokens)) return fail("not_array")
  if (tokens.length > MAX_CAPABILITY_TOKENS) return fail("too_many_tokens")
  for (const t of tokens) {
    if (typeof t !== "string") return fail("non_string_token")
    if (t.length === 0) return fail("empty_token")
    if (t.includes(",")) return fail("comma_in_token")
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i)
      if (c <= 0x20 || c === 0x7f) return fail("control_or_whitespace")
    }
  }
  const sorted = [...new Set(tokens as ReadonlyArray<string>)].sort()
  if (Buffer.byteLength(sorted.join(","), "utf8") > MAX_CAPABILITY_CSV_BYTES) return fail("too_many_bytes")
  return Either.right(sorted)
}

/** Case-sensitive subset test; returns the missing tokens (sorted). */
export const missingCapabilities = (
  required: ReadonlyArray<string>,
  worker: ReadonlyArray<string>
): ReadonlyArray<string> => {
  if (required.length === 0) return required
  const have = new Set(worker)
  return required.filter((t) => !have.has(t))
}

// ---------------------------------------------------------------------------
// Execution policy (docs/design/executions.md#execution-policy)
// ---------------------------------------------------------------------------

export interface ParsedPolicy {
  readonly policy: Policy | undefined
  readonly requiredCapabilities: ReadonlyArray<string>
}

const decodePolicyJson = Schema.decodeUnknownEither(ExecutionPolicy)
const validatePolicy = Schema.validateEither(ExecutionPolicy)

/** The policy of a create that gives none. */
const NO_POLICY: Either.Either<ParsedPolicy, Validation> = Either.right({ policy: undefined, requiredCapabilities: Object.freeze([]) })

export const parsePolicy = (input: Policy | string | undefined): Either.Either<ParsedPolicy, Validation> => {
  let policy: Policy | undefined
  if (input === undefined) {
    return NO_POLICY
  } else if (typeof input === "string") {
    if (input.trim() === "") {
      policy = undefined
    } else {
      let json: unknown
      try {
        json = JSON.parse(input)
      } catch {
        return Either.left(validation("InvalidPolicyJson", "malformed"))
      }
      if (typeof json !== "object" || json === null || Array.isArray(json)) {
        return Either.left(validation("InvalidPolicyJson", "malformed"))
      }
      const routing = (json as Record<string, unknown>)["routing_requirements"]
      if (routing !== undefined && (typeof routing !== "object" || routing === null || Array.isArray(routing))) {
        return Either.left(validation("InvalidPolicyJson", "routing_requirements:not_object"))
      }
      const caps = (routing as Record<string, unknown> | undefined)?.["required_capabilities"]
      if (caps !== undefined) {
        const checked = checkCapabilities("required", caps)
        if (Either.isLeft(checked)) return Either.left(checked.left)
      }
      const decoded = decodePolicyJson(json, { onExcessProperty: "ignore" })
      if (Either.isLeft(decoded)) return Either.left(validation("InvalidPolicyJson", formatIssue(decoded.left)))
      policy = decoded.right
    }
  } else {
    const routing = (input as { routingRequirements?: unknown }).routingRequirements
    if (routing !== undefined && (typeof routing !== "object" || routing === null || Array.isArray(routing))) {
      return Either.left(validation("InvalidPolicyJson", "routing_requirements:not_object"))
    }
    const caps = (routing as { requiredCapabilities?: unknown } | undefined)?.requiredCapabilities
    if (caps !== undefined) {
      const checked = checkCapabilities("required", caps)
      if (Either.isLeft(checked)) return Either.left(checked.left)
    }
    const validated = validatePolicy(input)
    if (Either.isLeft(validated)) return Either.left(validation("InvalidPolicyJson", formatIssue(validated.left)))
    policy = validated.right
  }
  const caps = policy?.routingRequirements?.requiredCapabilities ?? []
  return Either.map(checkCapabilities("required", caps), (requiredCapabilities) => ({ policy, requiredCapabilities }))
}

/** Backoff delay for the retry numbered `retryCount` (docs/design/executions.md#backoff). */
export const backoffDelayMs = (policy: Policy | undefined, retryCount: number): number => {
  const backoff = policy?.retryPolicy?.backoff
  if (backoff === undefined) return Math.min(1000 * Math.pow(2, retryCount), 60_000)
  if (backoff.type === "fixed") return backoff.delayMs
  if (backoff.initialDelayMs === 0) return 0
  return Math.min(Math.floor(backoff.initialDelayMs * Math.pow(backoff.multiplier, retryCount)), backoff.maxDelayMs)
}

// ---------------------------------------------------------------------------
// Tags, frames, waitpoint keys
// ---------------------------------------------------------------------------

const TAG_KEY = /^[a-z][a-z0-9_]*\.[^.]/

export const checkTags = (op: string, tags: Readonly<Record<string, string>>): Validation | undefined => {
  const keys = Object.keys(tags)
  const many = checkCount(op, "tags", keys.length, "tagsPerExecution")
  if (many !== undefined) return many
  for (const key of keys) {
    const bad = checkBytes(op, "a tag key", key, "tagKeyBytes") ?? checkBytes(op, "a tag value", tags[key], "tagValueBytes")
    if (bad !== undefined) return bad
    if (!TAG_KEY.test(key)) return validation("InvalidTagKey", echo(key))
  }
  return undefined
}

/** UTF-8 bytes of the keys and values of `tags` (checked with `checkTags` first). */
export const tagBytes = (tags: Readonly<Record<string, string>>): number => {
  let n = 0
  for (const key of Object.keys(tags)) n += Buffer.byteLength(key, "utf8") + Buffer.byteLength(tags[key]!, "utf8")
  return n
}

const FRAME_TYPE = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/

export const checkFrameType = (frameType: string): Validation | undefined =>
  frameType === "" || FRAME_TYPE.test(frameType) ? undefined : validation("InvalidFrameType", echo(frameType))

const waitpointKeyTooLong = () =>
  validation("InvalidWaitpointKey", `waitpoint key longer than ${MAX_WAITPOINT_KEY_BYTES} bytes (Limits.waitpointKeyBytes)`)

export const checkWaitpointKey = (key: string, allowEmpty: boolean): Validation | undefined => {
  if (key.length === 0) return allowEmpty ? undefined : validation("InvalidWaitpointKey", "empty waitpoint key")
  if (bytesOver(key, MAX_WAITPOINT_KEY_BYTES)) return waitpointKeyTooLong()
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return validation("InvalidWaitpointKey", "control character in waitpoint key")
  }
  return undefined
}

// ---------------------------------------------------------------------------
// Suspend arguments (docs/design/signals.md#suspending, #resume-conditions)
// ---------------------------------------------------------------------------

/** Every waitpoint key a condition refers to. */
export const conditionKeys = (c: ResumeCondition, out: Set<string> = new Set()): Set<string> => {
  switch (c._tag) {
    case "Single":
      out.add(c.waitpointKey)
      break
    case "Composite":
      if (c.body._tag === "AllOf") for (const m of c.body.members) conditionKeys(m, out)
      else for (const k of c.body.waitpoints) out.add(k)
      break
  }
  return out
}

const hasEmptySignalName = (c: ResumeCondition): boolean => {
  switch (c._tag) {
    case "Single":
      return c.matcher._tag === "ByName" && c.matcher.name === ""
    case "Composite":
      return c.body._tag === "AllOf" ?
        c.body.members.some(hasEmptySignalName) :
        c.body.matcher?._tag === "ByName" && c.body.matcher.name === ""
    default:
      return false
  }
}

const checkComposite = (body: CompositeBody, path: string, depth: number): string | undefined => {
  if (depth > MAX_COMPOSITE_DEPTH) return `depth ${depth} exceeds cap ${MAX_COMPOSITE_DEPTH} at path ${path}`
  if (body._tag === "AllOf") {
    if (body.members.length === 0) return `allof_empty_members at path ${path}`
    for (let i = 0; i < body.members.length; i++) {
      const m = body.members[i]!
      if (m._tag === "Composite") {
        const sub = path === "<root>" ? `members[${i}]` : `${path}.members[${i}]`
        const err = checkComposite(m.body, sub, depth + 1)
        if (err !== undefined) return err
      }
    }
    return undefined
  }
  if (body.n === 0) return `count_n_zero at path ${path}`
  if (body.waitpoints.length === 0) return `count_waitpoints_empty at path ${path}`
  if (body.countKind === "DistinctWaitpoints" && body.n > body.waitpoints.length) {
    return `count_exceeds_waitpoint_set: n=${body.n} > waitpoints.len()=${body.waitpoints.length} at path ${path}`
  }
  return undefined
}

export const checkSuspendArgs = (args: SuspendArgs, now: number): Validation | undefined => {
  const [primary, ...extras] = args.waitpoints
  if (primary === undefined) return invalidInput("waitpoints_empty")
  const cond = args.resumeCondition
  if (primary._tag === "Fresh" && cond._tag === "Single" && primary.waitpointKey !== cond.waitpointKey) {
    return invalidInput("waitpoint_key_mismatch")
  }
  if (extras.length > 0) {
    if (primary._tag === "UsePending") return invalidInput("use_pending_with_extras_unsupported")
    for (let i = 0; i < extras.length; i++) {
      const b = extras[i]!
      if (b._tag !== "Fresh") return invalidInput(`additional_waitpoint_binding_must_be_fresh at waitpoints[${i + 1}]`)
      if (b.waitpointKey === "") return invalidInput(`additional_waitpoint_binding_empty_key at waitpoints[${i + 1}]`)
    }
    const bound = new Set(args.waitpoints.map((b) => (b._tag === "Fresh" ? b.waitpointKey : "")))
    const referenced = conditionKeys(cond)
    for (const k of referenced) if (!bound.has(k)) return invalidInput(`referenced_waitpoint_key_missing_binding: ${k}`)
    for (const k of bound) if (!referenced.has(k)) return invalidInput(`extra_binding_not_referenced_by_condition: ${k}`)
  }
  const ids = new Set<string>()
  for (const b of args.waitpoints) {
    if (ids.has(b.waitpointId)) return invalidInput(`duplicate_waitpoint_id: ${b.waitpointId} is bound twice`)
    ids.add(b.waitpointId)
  }
  if (cond._tag === "TimeoutOnly" && args.timeoutAt === undefined) return invalidInput("timeout_only_without_deadline")
  if (hasEmptySignalName(cond)) return invalidInput("resume_condition: empty signal name (use Wildcard instead)")
  if (args.timeoutAt !== undefined && args.timeoutAt + TIMEOUT_SKEW_TOLERANCE_MS < now) {
    return invalidInput("timeout_at_in_past")
  }
  if (cond._tag === "Composite") {
    const err = checkComposite(cond.body, "<root>", 1)
    if (err !== undefined) return invalidInput(err)
  }
  for (const b of args.waitpoints) {
    if (b._tag === "Fresh") {
      const err = checkWaitpointKey(b.waitpointKey, true)
      if (err !== undefined) return err
    }
  }
  return undefined
}

/** The limits of `suspend`: bindings, the condition's size and names, the free strings. */
export const suspendLimits = (args: SuspendArgs): Validation | undefined => {
  const op = "suspend"
  const bad = checkCount(op, "waitpoints", args.waitpoints.length, "waitpointsPerSuspend") ??
    checkBytes(op, "reasonCode", args.reasonCode, "nameBytes") ??
    checkBytes(op, "continuationMetadataPointer", args.continuationMetadataPointer, "textBytes") ??
    checkBytes(op, "idempotencyKey", args.idempotencyKey, "nameBytes")
  if (bad !== undefined) return bad
  // the condition, walked without recursion and no further than its node budget
  const stack: Array<ResumeCondition> = [args.resumeCondition]
  let nodes = 0
  while (stack.length > 0) {
    const c = stack.pop()!
    if (++nodes > Limits.conditionNodes) return overLimit(op, "resumeCondition", "conditionNodes", "nodes")
    const matcher = c._tag === "Single" ? c.matcher : c._tag === "Composite" && c.body._tag === "Count" ? c.body.matcher : undefined
    const name = matcher?._tag === "ByName" ? checkBytes(op, "a signal name", matcher.name, "nameBytes") : undefined
    if (name !== undefined) return name
    if (c._tag === "Single") {
      if (bytesOver(c.waitpointKey, MAX_WAITPOINT_KEY_BYTES)) return waitpointKeyTooLong()
    } else if (c._tag === "Composite") {
      if (c.body._tag === "AllOf") {
        for (const m of c.body.members) stack.push(m)
      } else {
        const keys = checkCount(op, "a count's waitpoints", c.body.waitpoints.length, "waitpointsPerSuspend")
        if (keys !== undefined) return keys
        for (const k of c.body.waitpoints) if (bytesOver(k, MAX_WAITPOINT_KEY_BYTES)) return waitpointKeyTooLong()
      }
    }
  }
  return undefined
}

/** The limits of `deliverSignal`'s strings (its payload is checked first, on its own). */
export const signalLimits = (a: DeliverSignalArgs): Validation | undefined => {
  const op = "deliver_signal"
  return checkBytes(op, "signalName", a.signalName, "nameBytes") ??
    checkBytes(op, "signalCategory", a.signalCategory, "nameBytes") ??
    checkBytes(op, "sourceType", a.sourceType, "nameBytes") ??
    checkBytes(op, "sourceIdentity", a.sourceIdentity, "nameBytes") ??
    checkBytes(op, "payloadEncoding", a.payloadEncoding, "nameBytes") ??
    checkBytes(op, "correlationId", a.correlationId, "nameBytes") ??
    checkBytes(op, "idempotencyKey", a.idempotencyKey, "nameBytes") ??
    checkBytes(op, "targetScope", a.targetScope, "nameBytes") ??
    checkBytes(op, "waitpointToken", a.waitpointToken, "tokenBytes")
}

/** The dimensions (count, names) and dedup key of a budget or a usage report. */
export const usageLimits = (
  op: string,
  dimensions: ReadonlyArray<string>,
  dedupKey: string | undefined
): Validation | undefined => {
  const many = checkCount(op, "dimensions", dimensions.length, "budgetDimensions")
  if (many !== undefined) return many
  for (const d of dimensions) {
    const long = checkBytes(op, "a dimension name", d, "nameBytes")
    if (long !== undefined) return long
  }
  return checkBytes(op, "dedupKey", dedupKey, "nameBytes")
}

// ---------------------------------------------------------------------------
// HMAC keystore administration (docs/design/signals.md#the-keystore)
// ---------------------------------------------------------------------------

export const checkKid = (kid: string): Validation | undefined =>
  kid.length === 0 || kid.includes(":") ? validation("InvalidKid", echo(kid)) : undefined

/** The fewest bytes a waitpoint HMAC secret may have (docs/guide.md, "Waitpoint tokens and signals"). */
export const MIN_HMAC_SECRET_BYTES = 32

/**
 * Why `hex` is not an acceptable HMAC secret, or `undefined`: hex digits of
 * whole bytes, at least `MIN_HMAC_SECRET_BYTES` of them, and not one byte
 * repeated (an all-zero secret is the usual placeholder). The reason never
 * echoes the secret.
 */
export const hmacSecretProblem = (hex: string): string | undefined => {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
    return "secret_hex must be hex digits of whole bytes"
  }
  if (hex.length < MIN_HMAC_SECRET_BYTES * 2) {
    return `secret_hex must hold at least ${MIN_HMAC_SECRET_BYTES} bytes (${MIN_HMAC_SECRET_BYTES * 2} hex digits)`
  }
  const lower = hex.toLowerCase()
  if (lower === lower.slice(0, 2).repeat(lower.length / 2)) return "secret_hex must not be one byte repeated"
  return undefined
}

export const checkSecretHex = (hex: string): Validation | undefined => {
  const problem = hmacSecretProblem(hex)
  return problem === undefined ? undefined : validation("InvalidSecretHex", problem)
}

export const checkGraceMs = (grace: number): Validation | undefined =>
  Number.isInteger(grace) && grace >= 0 && grace <= Number.MAX_SAFE_INTEGER ? undefined : validation("InvalidGraceMs")

// ---------------------------------------------------------------------------
// Stream cursors (docs/design/streams-and-budgets.md#reading-streams)
// ---------------------------------------------------------------------------

const STREAM_ID = /^[0-9]+(-[0-9]+)?$/

export const checkStreamId = (id: string): Validation | undefined => {
  if (id.length === 0) return invalidInput("stream cursor: empty")
  if (id === "-" || id === "+") return invalidInput("stream cursor: bare marker rejected")
  return STREAM_ID.test(id) ? undefined : invalidInput(`stream cursor: malformed ${quote(id)}`)
}

/** `"<ms>"` or `"<ms>-<seq>"` as a comparable pair. */
export const parseStreamId = (id: string): readonly [number, number] => {
  const dash = id.indexOf("-")
  return dash < 0 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))]
}
