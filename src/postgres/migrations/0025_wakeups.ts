/**
 * Migration 0025: wake-ups of idle workers (docs/worker.md, "Wake-ups, timers and cancellation").
 *
 * - `lane_waiter`: a row per lane and worker instance while that worker waits for work there.
 *   What makes work claimable on a lane sends a NOTIFY only when the lane has a row, so a busy
 *   system pays no NOTIFY (which takes a global lock at commit).
 * - `exec_core_delayed_by_lane`: the due times of each lane's delayed and backed-off executions,
 *   for the timers of its idle workers. Partial: only delayed rows are in it, and a claim or a
 *   completion (which leave `delay_until` empty) does not touch it, so they stay HOT updates.
 */
export const sql = String.raw`
CREATE TABLE lane_waiter (
  lane_id            text COLLATE "C" NOT NULL,
  worker_instance_id text NOT NULL,
  expires_at         bigint NOT NULL,
  PRIMARY KEY (lane_id, worker_instance_id)
);

CREATE INDEX exec_core_delayed_by_lane ON exec_core (lane_id, delay_until) WHERE delay_until IS NOT NULL;
`
