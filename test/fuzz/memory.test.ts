// The fuzz test against the memory engine, with a tracer installed (every call also builds its span).
import * as MemoryBackend from "../../src/MemoryBackend.js"
import { fuzzSuite } from "./harness.js"

fuzzSuite("memory", MemoryBackend.layer(), { runs: 1_000, traced: true })
