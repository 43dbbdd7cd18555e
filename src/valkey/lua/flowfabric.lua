#!lua name=flowfabric
--[[
  flowfabric-effect: the Valkey function library (one library, loaded with FUNCTION LOAD REPLACE).

  The TypeScript layer concatenates the files of this directory in the order given by
  src/valkey/internal/library.ts, with this file first, and replaces __FF_SOURCE_HASH__ with
  the SHA-1 of the whole source, so `ff_version` changes whenever any byte of the library does.

  Calling convention (every function; each one's header gives its own KEYS, ARGV, reply, errors):
    KEYS[1] = the partition base "<prefix>:{fp:N}" (or "{b:M}" / "{q:K}"): every key a call
              touches is built from it, so one FCALL never leaves one cluster slot. The
              standalone-only functions (flag no-cluster) and the id registry's take another key.
    ARGV[1] = "now" in ms, or "" to read the store clock (TIME).
    ARGV[2] = the arguments as a JSON object; ARGV[3..] = binary blobs (payloads), and after
              them, for ff_complete_many / ff_complete_claim / ff_create_across /
              ff_create_many, the batch's items as strings, a fixed number per item (fi, fn in
              ARGV[2]: FF.complete_items_of, FF.create_items_of).
              The lease fence, which every write of the lease holder carries:
                {execution_id, attempt_index, attempt_id, lease_id, lease_epoch}
              Set by the layer, not by the operation (register.lua):
                _hint  = {prefix, partition}: a standalone write writes its wakes to the claim
                         hints and wakes the lanes' workers itself
                staged = {ARGV position: staging key}: a large blob staged beside KEYS[1]
                         (helpers.lua, "staged blobs")
  Replies:
    success  {1, status, wake, ...}  where wake is "" or a JSON object lane -> best claim score
                                     made claimable on this partition (and "\1"..lane -> due
                                     time of delayed work, FF.wake_json): the claim hints and
                                     due hints the layer writes on a cluster
    failure  {0, code, detail...}    codes mapped by EngineError.fromScriptCode
                                     (docs/design/errors.md#error-codes-of-the-server-libraries)
  Errors every function may answer besides its own: invalid_input (a malformed argument, before
  any write; "staged" for a bad staging map), staged_blob_missing (a staged blob expired).
  "The ladder's errors" (FF.ladder, lease.lua): execution_not_active (+ outcome, epoch, phase,
  attempt id), lease_revoked, lease_expired (+ "marked" and the wake when this call marked it),
  stale_lease.
]]
local FF = {}
FF.VERSION = "10" -- 10: a completed core keeps its last run in the lease fields (no last_run_* copies), last_mutation_at stored only while it differs from last_transition_at (a version 9 store is read); 9: the eligible index and pending set in buckets (a store of version 8 or older is read); 8: the events of one call in one stream entry per partition, one lane stream entry per lane (a version 7 store is read); 7: a flow keeps its members with a join group in :groups (flow record field gs; a flow without it is read by walking its members); 6: kind indexes only once a lane meets a second kind, index members by uuid bytes; 5: a small result in the core (a version 4 store is read by both); 4: no attempt records, the runs in the core (a version 3 store is read); 3: the id index in buckets; 2: the compact store layout (docs/design/valkey.md#key-layout); stores of versions 1 and 2 are not read
FF.SOURCE_HASH = "__FF_SOURCE_HASH__"
