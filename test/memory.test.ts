// The conformance suite against the in-memory engine: a fresh engine per test.
// The memory keystore is one global keystore, so a rotation reports one entry.
import * as MemoryBackend from "../src/MemoryBackend.js"
import { suite } from "./conformance/index.js"

suite("memory", MemoryBackend.layer(), { fresh: true, rotateEntries: "single" })

// The same suite on one engine shared by every test (the mode the server backends use).
suite("memory (shared engine)", MemoryBackend.layer(), { fresh: false, rotateEntries: "single" })
