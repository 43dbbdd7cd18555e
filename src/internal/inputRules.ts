/**
 * Rules every caller value obeys on every backend, checked at the boundary
 * after the schema has validated its shape (docs/guide.md, "Bad input"):
 *
 * - text is storable everywhere: no U+0000 and no lone surrogate (not
 *   well-formed UTF-16) in any string, record keys included;
 * - an execution id or partition key names a partition of this deployment
 *   (`{fp:N}` with N below `numFlowPartitions`);
 * - an argument object is nested at most `MAX_NESTING` levels deep (checked
 *   before a recursive schema walks it, so that a deep or cyclic value cannot
 *   exhaust the stack).
 *
 * The walk of a schema's values is compiled once per schema from its type AST.
 */
import { Schema, SchemaAST as AST } from "effect"
import { ExecutionId, executionPartition, parsePartitionKey, type PartitionConfig, PartitionKey } from "../Ids.js"

/** How deep an argument object may be nested, in objects and arrays. */
export const MAX_NESTING = 64

/** What is wrong with a string as stored text, or `undefined`. */
export const textProblem = (s: string): string | undefined =>
  s.indexOf("\u0000") >= 0 ?
    "contains U+0000 (NUL)" :
    !(s as unknown as { isWellFormed(): boolean }).isWellFormed() ?
    "is not well-formed UTF-16 (a lone surrogate)" :
    undefined

export interface RuleContext {
  readonly partitions: PartitionConfig
}

/** Checks `v` at `path`; returns what is wrong (without the path), or `undefined`. */
type Rule = (v: unknown, path: Array<PropertyKey>, ctx: RuleContext) => string | undefined

const executionIdAst = ExecutionId.ast
const partitionKeyAst = PartitionKey.ast

const textRule: Rule = (v) => (typeof v === "string" ? textProblem(v) : undefined)

const executionIdRule: Rule = (v, _path, ctx) => {
  if (typeof v !== "string") return undefined
  const p = executionPartition(v as ExecutionId)
  const n = ctx.partitions.numFlowPartitions
  return p < n ? undefined : `partition ${p} is not one of this deployment's ${n} flow partitions`
}

const partitionKeyRule: Rule = (v, _path, ctx) => {
  if (typeof v !== "string") return undefined
  const parsed = parsePartitionKey(v)
  if (parsed._tag === "Left") return undefined
  const { family, index } = parsed.right
  const n = family === "Flow" ?
    ctx.partitions.numFlowPartitions :
    family === "Budget" ?
    ctx.partitions.numBudgetPartitions :
    ctx.partitions.numQuotaPartitions
  return index < n ? undefined : `partition ${index} is not one of this deployment's ${n} ${family.toLowerCase()} partitions`
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const suspended = new Map<AST.Suspend, Rule>()

const compileNode = (ast: AST.AST): Rule | undefined => {
  if (ast === executionIdAst) return executionIdRule
  if (ast === partitionKeyAst) return partitionKeyRule
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
      return textRule
    case "Refinement":
      return compileNode(ast.from)
    case "Transformation":
      return compileNode(ast.to)
    case "Union": {
      const rules = ast.types.map(compileNode).filter((r): r is Rule => r !== undefined)
      if (rules.length === 0) return undefined
      return (v, path, ctx) => {
        for (const r of rules) {
          const problem = r(v, path, ctx)
          if (problem !== undefined) return problem
        }
        return undefined
      }
    }
    case "TupleType": {
      const elements = ast.elements.map((e) => compileNode(e.type))
      const rest = ast.rest.length > 0 ? compileNode(ast.rest[0]!.type) : undefined
      if (rest === undefined && elements.every((e) => e === undefined)) return undefined
      return (v, path, ctx) => {
        if (!Array.isArray(v)) return undefined
        for (let i = 0; i < v.length; i++) {
          const r = i < elements.length ? elements[i] : rest
          if (r === undefined) continue
          path.push(i)
          const problem = r(v[i], path, ctx)
          if (problem !== undefined) return problem
          path.pop()
        }
        return undefined
      }
    }
    case "TypeLiteral": {
      const fields = ast.propertySignatures
        .map((ps) => [ps.name, compileNode(ps.type)] as const)
        .filter((f): f is readonly [PropertyKey, Rule] => f[1] !== undefined)
      const indexes = ast.indexSignatures.map((is) => [compileNode(is.parameter), compileNode(is.type)] as const)
      return (v, path, ctx) => {
        if (!isRecord(v)) return undefined
        for (const [name, rule] of fields) {
          if (!Object.hasOwn(v, name)) continue
          path.push(name)
          const problem = rule((v as Record<PropertyKey, unknown>)[name], path, ctx)
          if (problem !== undefined) return problem
          path.pop()
        }
        for (const [keyRule, valueRule] of indexes) {
          for (const key of Object.keys(v)) {
            path.push(key)
            const problem = keyRule?.(key, path, ctx) ?? valueRule?.(v[key], path, ctx)
            if (problem !== undefined) return problem
            path.pop()
          }
        }
        return undefined
      }
    }
    case "Suspend": {
      let rule = suspended.get(ast)
      if (rule === undefined) {
        let inner: Rule | undefined | null = null
        rule = (v, path, ctx) => {
          if (inner === null) inner = compileNode(ast.f())
          return inner?.(v, path, ctx)
        }
        suspended.set(ast, rule)
      }
      return rule
    }
    default:
      // literals, numbers, booleans, declarations (bytes, durations): nothing to check
      return undefined
  }
}

const compiled = new WeakMap<object, Rule | null>()

/**
 * What breaks a rule in `value`, a value `schema` has validated: `"<path>:
 * <problem>"`, or `undefined`.
 */
export const inputProblem = <A, I, R>(
  schema: Schema.Schema<A, I, R>,
  value: unknown,
  ctx: RuleContext
): string | undefined => {
  let rule = compiled.get(schema.ast)
  if (rule === undefined) {
    rule = compileNode(AST.typeAST(schema.ast)) ?? null
    compiled.set(schema.ast, rule)
  }
  if (rule === null) return undefined
  const path: Array<PropertyKey> = []
  const problem = rule(value, path, ctx)
  return problem === undefined ? undefined : path.length === 0 ? problem : `${path.map(String).join(".")}: ${problem}`
}

/** Whether `value` holds objects or arrays nested deeper than `max` (a cycle is infinitely deep). */
export const nestedDeeperThan = (value: unknown, max: number = MAX_NESTING): boolean => {
  const isNode = (v: unknown): v is object => typeof v === "object" && v !== null && !ArrayBuffer.isView(v)
  if (!isNode(value)) return false
  // objects still to visit, each with its depth (1 for the value itself)
  const stack: Array<readonly [object, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (depth > max) return true
    const children: ReadonlyArray<unknown> = Array.isArray(v) ?
      v :
      Object.keys(v).map((k) => (v as Record<string, unknown>)[k])
    for (const x of children) if (isNode(x)) stack.push([x, depth + 1])
  }
  return false
}
