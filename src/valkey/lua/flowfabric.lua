#!lua name=flowfabric
--[[
  flowfabric-effect: the Valkey function library (one library, loaded with FUNCTION LOAD REPLACE).

  The TypeScript layer concatenates the files of this directory in the order given by
  src/valkey/internal/library.ts, with this file first, and replaces __FF_SOURCE_HASH__ with
  the SHA-1 of the whole source, so `ff_version` changes whenever any byte of the library does.

  Calling convention (every function):
    KEYS[1] = the partition base "<prefix>:{fp:N}" (or "{b:M}" / "{q:K}"): every key a call
              touches is built from it, so one FCALL never leaves one cluster slot.
    ARGV[1] = "now" in ms, or "" to read the store clock (TIME).
    ARGV[2] = the arguments as a JSON object; ARGV[3..] = binary blobs (payloads).
  Replies:
    success  {1, status, wake, ...}  where wake is "" or a JSON object lane -> best priority made
                                     claimable on this partition (the TS side keeps claim hints)
    failure  {0, code, detail...}    codes mapped by EngineError.fromScriptCode
                                     (docs/design/errors.md#error-codes-of-the-server-libraries)
]]
local FF = {}
FF.VERSION = "1"
FF.SOURCE_HASH = "__FF_SOURCE_HASH__"
