/**
 * How an error detail quotes a caller's value: short (at most about 60
 * characters), cheap (never walks the value) and total (never throws, whatever
 * the value is: cyclic, deep, a symbol, an object without a prototype).
 */
const MAX_QUOTED_CHARS = 48

const nameOf = (u: object): string => {
  try {
    const ctor = (u as { constructor?: { name?: unknown } }).constructor
    return typeof ctor?.name === "string" && ctor.name !== "" ? ctor.name : "Object"
  } catch {
    return "Object"
  }
}

export const quote = (u: unknown): string => {
  switch (typeof u) {
    case "string":
      return u.length <= MAX_QUOTED_CHARS ?
        JSON.stringify(u) :
        `${JSON.stringify(u.slice(0, MAX_QUOTED_CHARS))}…(${u.length} chars)`
    case "number":
    case "boolean":
    case "undefined":
      return String(u)
    case "bigint":
      return "a bigint"
    case "symbol":
      return "a symbol"
    case "function":
      return "a function"
    default: {
      if (u === null) return "null"
      if (Array.isArray(u)) return `an array of ${u.length} items`
      if (ArrayBuffer.isView(u)) return `${nameOf(u)} of ${u.byteLength} bytes`
      const name = nameOf(u as object)
      return name === "Object" ? "an object" : `a ${name}`
    }
  }
}
