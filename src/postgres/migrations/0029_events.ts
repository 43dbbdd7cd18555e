/**
 * Migration 0029: the event log (docs/design/events.md).
 *
 * - `event`: one narrow row per event. `k` orders it (with `id`): the writing transaction's id, or
 *   the execution's (or flow's) previous `k` when that is larger, so that an execution's events
 *   are in the order of its transitions and a reader that takes only `k` below the oldest running
 *   transaction misses none. `kind` is the event's tag; `attempt`, `num`, `s1` and `s2` hold its
 *   fields (see `ffi_exec_event` in events.sql). Indexed by execution, by lane and by flow for the
 *   reads, and by `id` for the trim.
 * - `exec_core.event_k`, `flow_core.event_k`: the `k` of the row's last event.
 * - `event_trim`: the newest position trimmed (an offset before it has expired).
 * - `event_waiter`: the scopes some process follows (unlogged): an event notifies only those.
 * - the triggers that write the events of `exec_core` and `flow_core` in the transaction of the
 *   change. `ExecutionCreated` comes from an `AFTER INSERT` trigger, which runs only for the rows
 *   inserted: a `BEFORE INSERT` one would also run for a row that `ON CONFLICT DO NOTHING` then
 *   skips (a duplicate create). The new row's `event_k` is its transaction's id (the default). Their functions only hand the rows to the library (`ffi_exec_event`, `ffi_flow_event`),
 *   so the library can be replaced without them.
 */
export const sql = String.raw`
CREATE TABLE event (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  k            bigint NOT NULL,
  at           bigint NOT NULL,
  execution_id text COLLATE "C",
  lane_id      text COLLATE "C",
  flow_id      uuid,
  kind         text NOT NULL,
  attempt      int,
  num          bigint,
  s1           text,
  s2           text
);
CREATE INDEX event_by_execution ON event (execution_id, k, id) WHERE execution_id IS NOT NULL;
CREATE INDEX event_by_lane ON event (lane_id, k, id) WHERE lane_id IS NOT NULL;
CREATE INDEX event_by_flow ON event (flow_id, k, id) WHERE flow_id IS NOT NULL;

CREATE TABLE event_trim (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  k         bigint NOT NULL,
  id        bigint NOT NULL
);

CREATE UNLOGGED TABLE event_waiter (
  scope      text COLLATE "C" NOT NULL,
  listener   uuid NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (scope, listener)
);

ALTER TABLE exec_core ADD COLUMN event_k bigint DEFAULT pg_current_xact_id()::text::bigint;
ALTER TABLE flow_core ADD COLUMN event_k bigint;

CREATE FUNCTION ff_trg_exec_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ffi_exec_event(true, NULL, NEW);
  RETURN NULL;
END $$;

CREATE TRIGGER exec_core_event_created AFTER INSERT ON exec_core
  FOR EACH ROW EXECUTE FUNCTION ff_trg_exec_created();

CREATE FUNCTION ff_trg_exec_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.event_k := ffi_exec_event(false, OLD, NEW);
  RETURN NEW;
END $$;

CREATE TRIGGER exec_core_event_update BEFORE UPDATE ON exec_core
  FOR EACH ROW WHEN (OLD.public_state IS DISTINCT FROM NEW.public_state
    OR OLD.ownership_state IS DISTINCT FROM NEW.ownership_state
    OR OLD.lease_epoch IS DISTINCT FROM NEW.lease_epoch
    OR OLD.attempt_state IS DISTINCT FROM NEW.attempt_state
    OR OLD.progress_updated_at IS DISTINCT FROM NEW.progress_updated_at
    OR OLD.flow_id IS DISTINCT FROM NEW.flow_id)
  EXECUTE FUNCTION ff_trg_exec_event();

CREATE FUNCTION ff_trg_flow_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.event_k := ffi_flow_event(OLD, NEW);
  RETURN NEW;
END $$;

CREATE TRIGGER flow_core_event_update BEFORE UPDATE ON flow_core
  FOR EACH ROW WHEN (OLD.public_flow_state IS DISTINCT FROM NEW.public_flow_state
    OR OLD.node_count IS DISTINCT FROM NEW.node_count
    OR OLD.live_members IS DISTINCT FROM NEW.live_members
    OR OLD.failed_members IS DISTINCT FROM NEW.failed_members
    OR OLD.sealed IS DISTINCT FROM NEW.sealed)
  EXECUTE FUNCTION ff_trg_flow_event();
`
