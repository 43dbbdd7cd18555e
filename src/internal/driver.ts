/**
 * The server backends' client libraries are optional peer dependencies: the entry points
 * `flowfabric-effect/valkey` and `flowfabric-effect/postgres` load them with a dynamic import
 * when they are imported, so that a missing one fails the import with a message that says what to
 * install (a static import would fail with Node's bare "Cannot find package").
 */

/** Whether `error` is Node's "Cannot find package '<name>'" for one of `packages`. */
const missingPackage = (error: unknown, packages: ReadonlyArray<string>): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const { code, message } = error as { readonly code?: unknown; readonly message?: unknown }
  if (code !== "ERR_MODULE_NOT_FOUND" || typeof message !== "string") return undefined
  return packages.find((name) => message.includes(`'${name}'`))
}

/**
 * Runs `load` (the entry point's dynamic imports of its driver); a driver package that is not
 * installed becomes an error naming it and the `npm install` command of the whole stack.
 */
export const importDriver = async <A>(
  entryPoint: string,
  install: ReadonlyArray<readonly [name: string, range: string]>,
  load: () => Promise<A>
): Promise<A> => {
  try {
    return await load()
  } catch (error) {
    const missing = missingPackage(error, install.map(([name]) => name))
    if (missing === undefined) throw error
    throw new Error(
      `${entryPoint} needs the package ${missing}, which is not installed. Install the backend's driver: ` +
        `npm install ${install.map(([name, range]) => `${name}@${range}`).join(" ")}`,
      { cause: error }
    )
  }
}
