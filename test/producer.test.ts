import * as MemoryBackend from "../src/MemoryBackend.js"
import { producerSuite } from "./producer/suite.js"

producerSuite("memory", MemoryBackend.layer())
