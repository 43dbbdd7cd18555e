/**
 * Every TypeScript block of README.md and every .md under docs/, compiled against the built package under strict
 * settings (`strict`, `exactOptionalPropertyTypes`, `noUncheckedIndexedAccess`, NodeNext) with the
 * imports a reader would write (`flowfabric-effect`, `flowfabric-effect/valkey`,
 * `flowfabric-effect/postgres`), and the runnable ones run under Node.
 *
 * A block's info string says what it is:
 * - ```` ```ts ```` — a whole module: compiled, then run with Node (it must exit 0). Examples on the
 *   memory layer, or that only build layers, run as they are.
 * - ```` ```ts no-run ```` — a whole module that is compiled but not run (it needs a server, runs forever,
 *   or is a test file).
 * - ```` ```ts fragment ```` — a piece of a program, compiled inside a wrapper: the HTML comment right
 *   before the block, `<!-- wrapper … -->`, holds the TypeScript that declares what the fragment uses;
 *   a line `/* block *\/` in it marks where the fragment goes (default: at the end). Never run.
 *
 * Also checked: every `npm install name@range` in a shell block names the range package.json gives that
 * package (the peer range, or the dev dependency the tests run on).
 */
import { execFile } from "node:child_process"
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const exec = promisify(execFile)
const root = new URL("..", import.meta.url).pathname

interface Block {
  /** `README.md:44` */
  readonly where: string
  /** The file the block is compiled as, e.g. `README_44`. */
  readonly id: string
  readonly lang: string
  readonly tags: ReadonlyArray<string>
  readonly code: string
  readonly wrapper: string | undefined
}

const TAGS = new Set(["no-run", "fragment"])
const TS_LANGS = new Set(["ts", "typescript"])

const docFiles = async (): Promise<ReadonlyArray<string>> => [
  "README.md",
  ...(await readdir(path.join(root, "docs"), { recursive: true })).filter((f) => f.endsWith(".md")).sort().map((f) =>
    `docs/${f}`
  )
]

/** Every fenced block of `file`, with the HTML comment right before it. */
const blocksOf = (file: string, text: string): ReadonlyArray<Block> => {
  const lines = text.split("\n")
  const out: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*(.*)$/.exec(lines[i]!)
    if (open === null) continue
    let end = i + 1
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++
    const code = lines.slice(i + 1, end).join("\n")
    // the comment that ends on the last non-blank line before the fence
    let j = i - 1
    while (j >= 0 && lines[j]!.trim() === "") j--
    let wrapper: string | undefined
    if (j >= 0 && lines[j]!.trim().endsWith("-->")) {
      let k = j
      while (k >= 0 && !lines[k]!.includes("<!--")) k--
      const comment = lines.slice(k, j + 1).join("\n").replace(/^\s*<!--/, "").replace(/-->\s*$/, "")
      const first = comment.indexOf("\n")
      if (comment.slice(0, first).trim() === "wrapper") wrapper = comment.slice(first + 1)
    }
    const name = file.replace(/^docs\//, "").replace(/\.md$/, "").replace(/[^A-Za-z0-9]/g, "_")
    out.push({
      where: `${file}:${i + 1}`,
      id: `${name}_${i + 1}`,
      lang: open[1]!,
      tags: open[2]!.split(/\s+/).filter((t) => t !== ""),
      code,
      wrapper
    })
    i = end
  }
  return out
}

const sourceOf = (b: Block): string => {
  const body = b.wrapper === undefined ?
    b.code :
    b.wrapper.includes("/* block */") ?
    b.wrapper.replace("/* block */", b.code) :
    `${b.wrapper}\n${b.code}`
  // every block is a module of its own, whether or not it imports anything
  return `${body}\nexport {}\n`
}

/** npm and node without the npm_* variables of the `npm test` that runs this file. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")))

let work = ""
let blocks: ReadonlyArray<Block> = []
let shellBlocks: ReadonlyArray<Block> = []
/** tsc's diagnostics per block id. */
const diagnostics = new Map<string, Array<string>>()

describe("the TypeScript blocks of README.md and docs/", () => {
  beforeAll(async () => {
    const all: Array<Block> = []
    for (const file of await docFiles()) all.push(...blocksOf(file, await readFile(path.join(root, file), "utf8")))
    blocks = all.filter((b) => TS_LANGS.has(b.lang))
    shellBlocks = all.filter((b) => b.lang === "sh" || b.lang === "bash")

    // the package as an app installs it: dist/ and package.json under node_modules/flowfabric-effect;
    // every other package of the repository's node_modules beside it (one copy of effect)
    work = await mkdtemp(path.join(tmpdir(), "flowfabric-docs-"))
    const modules = path.join(work, "node_modules")
    const pkg = path.join(modules, "flowfabric-effect")
    await mkdir(pkg, { recursive: true })
    for (const entry of await readdir(path.join(root, "node_modules"))) {
      if (entry.startsWith(".") || entry === "flowfabric-effect") continue
      await symlink(path.join(root, "node_modules", entry), path.join(modules, entry))
    }
    const tsc = path.join(root, "node_modules/typescript/bin/tsc")
    await exec(process.execPath, [
      tsc,
      "-p",
      path.join(root, "tsconfig.build.json"),
      "--outDir",
      path.join(pkg, "dist"),
      "--sourceMap",
      "false",
      "--declarationMap",
      "false"
    ], { cwd: root, env, maxBuffer: 64 * 1024 * 1024 })
    await cp(path.join(root, "src/valkey/lua"), path.join(pkg, "dist/valkey/lua"), { recursive: true })
    await cp(path.join(root, "package.json"), path.join(pkg, "package.json"))

    // the blocks, as an app with strict settings
    await writeFile(path.join(work, "package.json"), JSON.stringify({ name: "docs-app", private: true, type: "module" }))
    await writeFile(
      path.join(work, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2022"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          skipLibCheck: true,
          types: ["node"],
          rootDir: "snippets",
          outDir: "out"
        },
        include: ["snippets"]
      })
    )
    await mkdir(path.join(work, "snippets"))
    for (const b of blocks) await writeFile(path.join(work, "snippets", `${b.id}.ts`), sourceOf(b))
    const output = await exec(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: work, env, maxBuffer: 64 * 1024 * 1024 })
      .then((r) => r.stdout, (e: { stdout?: string }) => e.stdout ?? String(e))
    let current: string | undefined
    for (const line of output.split("\n")) {
      const m = /^snippets\/([A-Za-z0-9_]+)\.ts\(/.exec(line)
      if (m !== null) {
        current = m[1]!
        diagnostics.set(current, [...(diagnostics.get(current) ?? []), line])
      } else if (current !== undefined && line.startsWith(" ")) {
        diagnostics.get(current)!.push(line)
      } else if (line.trim() !== "") {
        current = undefined
        diagnostics.set("(tsc)", [...(diagnostics.get("(tsc)") ?? []), line])
      }
    }
  }, 600_000)

  afterAll(async () => {
    if (work !== "") await rm(work, { recursive: true, force: true })
  })

  it("finds the blocks, and every tag is known", () => {
    expect(blocks.length).toBeGreaterThan(10)
    for (const b of blocks) {
      expect({ where: b.where, unknown: b.tags.filter((t) => !TAGS.has(t)) }).toEqual({ where: b.where, unknown: [] })
      if (b.wrapper !== undefined) expect({ where: b.where, tags: b.tags }).toEqual({ where: b.where, tags: ["fragment"] })
    }
    expect(diagnostics.get("(tsc)") ?? []).toEqual([])
  })

  it("every block compiles under strict settings against the built package", () => {
    const failing = blocks.flatMap((b) => {
      const errors = diagnostics.get(b.id)
      if (errors === undefined) return []
      const numbered = sourceOf(b).split("\n").map((l, n) => `${String(n + 1).padStart(4)} | ${l}`).join("\n")
      return [`${b.where} (compiled as ${b.id}.ts):\n${errors.join("\n")}\n${numbered}`]
    })
    expect(failing.join("\n\n")).toBe("")
  })

  it("every runnable block runs under Node and exits 0", async () => {
    const runnable = blocks.filter((b) => b.tags.length === 0)
    expect(runnable.length).toBeGreaterThan(2)
    const failing: Array<string> = []
    for (const b of runnable) {
      if (diagnostics.has(b.id)) continue // reported by the compile test
      try {
        await exec(process.execPath, [path.join("out", `${b.id}.js`)], { cwd: work, env, timeout: 60_000 })
      } catch (e) {
        const err = e as { code?: unknown; signal?: unknown; stdout?: string; stderr?: string }
        failing.push(`${b.where}: exit ${String(err.code)} ${String(err.signal ?? "")}\n${err.stdout ?? ""}${err.stderr ?? ""}`)
      }
    }
    expect(failing.join("\n\n")).toBe("")
  }, 600_000)

  it("every npm install in the docs names the versions package.json declares", async () => {
    const manifest = JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as {
      readonly peerDependencies: Readonly<Record<string, string>>
      readonly devDependencies: Readonly<Record<string, string>>
    }
    const mismatches: Array<string> = []
    for (const b of shellBlocks) {
      for (const command of b.code.replace(/\\\n/g, " ").split("\n")) {
        const install = /\bnpm install\s+(.*)$/.exec(command.replace(/#.*$/, ""))
        if (install === null) continue
        for (const token of install[1]!.split(/\s+/)) {
          const m = /^(@?[^@\s]+)@(\S+)$/.exec(token)
          if (m === null) continue
          const declared = manifest.peerDependencies[m[1]!] ?? manifest.devDependencies[m[1]!]
          if (declared !== undefined && declared !== m[2]) mismatches.push(`${b.where}: ${token}, package.json: ${declared}`)
        }
      }
    }
    expect(mismatches).toEqual([])
  })
})
