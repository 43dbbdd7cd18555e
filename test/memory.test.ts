// The conformance suite against the in-memory engine: a fresh engine per test, with an empty keystore
// (the suite seeds it, and checks what an empty one does).
// The memory keystore is one global keystore, so a rotation reports one entry.
import * as MemoryBackend from "../src/MemoryBackend.js"
import { suite } from "./conformance/index.js"

suite("memory", MemoryBackend.layer({ hmacSecret: "none" }), { fresh: true, rotateEntries: "single" })

// The same suite on one engine shared by every test (the mode the server backends use), with the
// random secret the layer seeds by default.
suite("memory (shared engine)", MemoryBackend.layer(), { fresh: false, rotateEntries: "single" })
