/**
 * A validator compiled from a schema's type AST for the shapes the hot
 * operations take (structs of strings, numbers, literals, refinements, arrays
 * and records). It answers for valid input only: it returns the value as
 * `Schema.validate` would (structs rebuilt from their known keys) or
 * `undefined`, and the caller then runs the Schema validator, which decides
 * and explains. Every check it makes is one the schema makes (type tests and
 * the refinements' own filters), so it never accepts what Schema rejects;
 * nodes it does not know (suspensions, templates, …) make it decline.
 */
import { Option, ParseResult, Schema, SchemaAST as AST } from "effect"

/** The validated value, or `FAIL` when the fast path cannot vouch for the input. */
type Check = (u: unknown) => unknown
const FAIL: unique symbol = Symbol("fastValidate/FAIL")

const noOptions: AST.ParseOptions = {}

const compileNode = (ast: AST.AST): Check | undefined => {
  switch (ast._tag) {
    case "StringKeyword":
      return (u) => (typeof u === "string" ? u : FAIL)
    case "NumberKeyword":
      return (u) => (typeof u === "number" ? u : FAIL)
    case "BooleanKeyword":
      return (u) => (typeof u === "boolean" ? u : FAIL)
    case "UndefinedKeyword":
      return (u) => (u === undefined ? u : FAIL)
    case "UnknownKeyword":
    case "AnyKeyword":
      return (u) => u
    case "Literal": {
      const literal = ast.literal
      return (u) => (u === literal ? u : FAIL)
    }
    case "Declaration": {
      const is = ParseResult.is(Schema.make(ast))
      return (u) => (is(u) ? u : FAIL)
    }
    case "Refinement": {
      const from = compileNode(ast.from)
      if (from === undefined) return undefined
      return (u) => {
        const v = from(u)
        return v !== FAIL && Option.isNone(ast.filter(v, noOptions, ast)) ? v : FAIL
      }
    }
    case "Union": {
      const members: Array<Check> = []
      for (const member of ast.types) {
        const c = compileNode(member)
        if (c === undefined) return undefined
        members.push(c)
      }
      return (u) => {
        for (const c of members) {
          const v = c(u)
          if (v !== FAIL) return v
        }
        return FAIL
      }
    }
    case "TupleType": {
      if (ast.elements.length > 0 || ast.rest.length !== 1) return undefined
      const item = compileNode(ast.rest[0]!.type)
      if (item === undefined) return undefined
      return (u) => {
        if (!Array.isArray(u)) return FAIL
        const out = new Array(u.length)
        for (let i = 0; i < u.length; i++) {
          const v = item(u[i])
          if (v === FAIL) return FAIL
          out[i] = v
        }
        return out
      }
    }
    case "TypeLiteral":
      return compileTypeLiteral(ast)
    default:
      return undefined
  }
}

/** A compiled struct field: its name, whether it may be absent, and its check (`FAIL` when it cannot vouch). */
interface Field {
  readonly name: string
  readonly optional: boolean
  readonly check: Check
}

const compileFields = (ast: AST.TypeLiteral): ReadonlyArray<Field> | undefined => {
  const fields: Array<Field> = []
  for (const ps of ast.propertySignatures) {
    if (typeof ps.name !== "string") return undefined
    const check = compileNode(ps.type)
    if (check === undefined) return undefined
    fields.push({ name: ps.name, optional: ps.isOptional, check })
  }
  return fields
}

const compileTypeLiteral = (ast: AST.TypeLiteral): Check | undefined => {
  if (ast.indexSignatures.length > 0) {
    const [index] = ast.indexSignatures
    if (ast.propertySignatures.length > 0 || ast.indexSignatures.length > 1 || index!.parameter._tag !== "StringKeyword") {
      return undefined
    }
    const value = compileNode(index!.type)
    if (value === undefined) return undefined
    return (u) => {
      if (typeof u !== "object" || u === null || Array.isArray(u)) return FAIL
      if (Object.getOwnPropertySymbols(u).length > 0) return FAIL
      // keys are the caller's: no prototype, so that "__proto__" is a key like any other
      const out: Record<string, unknown> = Object.create(null)
      for (const key of Object.keys(u)) {
        const v = value((u as Record<string, unknown>)[key])
        if (v === FAIL) return FAIL
        out[key] = v
      }
      return out
    }
  }
  const fields = compileFields(ast)
  if (fields === undefined) return undefined
  return (u) => {
    if (typeof u !== "object" || u === null || Array.isArray(u)) return FAIL
    const input = u as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const f of fields) {
      if (!Object.hasOwn(input, f.name)) {
        if (f.optional) continue
        return FAIL
      }
      const v = f.check(input[f.name])
      if (v === FAIL) return FAIL
      out[f.name] = v
    }
    return out
  }
}

/**
 * The fast validator of `schema`'s type side, or `undefined` when its AST
 * has a node the compiler does not handle.
 */
export const compile = <A, I>(schema: Schema.Schema<A, I>): ((u: unknown) => A | undefined) | undefined => {
  const check = compileNode(AST.typeAST(schema.ast))
  if (check === undefined) return undefined
  return (u) => {
    const v = check(u)
    return v === FAIL ? undefined : (v as A)
  }
}

/**
 * The fast constructor of a struct schema (`Schema.Struct.make`'s defaults, then validation) in one
 * pass over `fields` in their order: each value is read from the input (its own or inherited key,
 * as `Struct.make` reads it), replaced by its constructor default when undefined, checked, and
 * written once. It answers for valid input only (`undefined` otherwise, and the caller then takes
 * the schema's own path); `undefined` too when the schema has a node the compiler does not handle.
 */
export const compileConstructor = (
  schema: Schema.Schema.Any,
  defaults: ReadonlyArray<readonly [key: PropertyKey, defaultValue: (() => unknown) | undefined]>
): ((input: object) => Record<string, unknown> | undefined) | undefined => {
  const ast = AST.typeAST(schema.ast)
  if (ast._tag !== "TypeLiteral" || ast.indexSignatures.length > 0) return undefined
  const fields = compileFields(ast)
  if (fields === undefined || fields.length !== defaults.length) return undefined
  const plan: Array<Field & { readonly defaultValue: (() => unknown) | undefined }> = []
  for (let i = 0; i < fields.length; i++) {
    const [key, defaultValue] = defaults[i]!
    if (key !== fields[i]!.name) return undefined
    plan.push({ ...fields[i]!, defaultValue })
  }
  return (input) => {
    const source = input as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const f of plan) {
      let value = source[f.name]
      if (value === undefined) {
        if (f.defaultValue !== undefined) value = f.defaultValue()
        if (value === undefined && !(f.name in source)) {
          if (f.optional) continue
          return undefined
        }
      }
      const v = f.check(value)
      if (v === FAIL) return undefined
      out[f.name] = v
    }
    return out
  }
}
