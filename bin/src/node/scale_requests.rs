//! The node's side of `autoscale-node scale`: take requests, change the target, answer (a
//! scale-down's answer waits for the workers' acknowledgements). The wire format is in
//! [`crate::requests`].

use crate::requests::{self, ScaleOp, ScaleReply, ScaleRequest};
use crate::scaler::WorkerCounts;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::time::{Duration, Instant};

/// A `scale` request waiting for its scale-downs to be acknowledged.
struct PendingReply {
    id: String,
    deadline: Instant,
    /// Requested removals still unacknowledged when the request arrived plus this request's.
    until_pending_at_most: u32,
    target: u32,
}

/// One request taken from the queue, for the node to apply.
pub struct Taken {
    pub request: ScaleRequest,
}

impl Taken {
    /// The target the request asks for, given the current one (before bounds).
    pub fn wanted(&self, current: u32) -> u32 {
        let r = &self.request;
        match r.op {
            ScaleOp::Add => current.saturating_add(r.n),
            ScaleOp::Remove => current.saturating_sub(r.n),
            ScaleOp::Set => r.n,
        }
    }
}

/// Requests taken and replies owed.
#[derive(Default)]
pub struct ScaleRequests {
    pending: Vec<PendingReply>,
}

impl ScaleRequests {
    /// The next request, if any (malformed ones are logged and skipped).
    pub async fn take(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<Option<Taken>> {
        loop {
            let raw: Option<String> = conn.rpop(requests::REQUESTS, None).await?;
            let Some(raw) = raw else { return Ok(None) };
            match serde_json::from_str::<ScaleRequest>(&raw) {
                Ok(request) => return Ok(Some(Taken { request })),
                Err(e) => tracing::warn!(error = %e, %raw, "ignoring a malformed scale request"),
            }
        }
    }

    /// Answers `taken` now, or — a scale-down with removals still unacknowledged — once they
    /// are (see [`Self::answer_pending`]).
    pub async fn answer(
        &mut self,
        conn: &mut MultiplexedConnection,
        taken: Taken,
        before: u32,
        target: u32,
        note: &str,
        counts: &WorkerCounts,
    ) -> redis::RedisResult<()> {
        let req = taken.request;
        if !req.reply {
            return Ok(());
        }
        if target < before && counts.pending_scale_down > 0 {
            self.pending.push(PendingReply {
                id: req.id,
                deadline: Instant::now() + Duration::from_secs_f64(req.timeout_s.clamp(0.0, 3600.0)),
                until_pending_at_most: counts.pending_scale_down
                    - (before - target).min(counts.pending_scale_down),
                target,
            });
            return Ok(());
        }
        let reply = ScaleReply {
            ok: true,
            message: format!("target {before} → {target}{note}"),
            target,
            workers: counts.clone(),
        };
        reply_to(conn, &req.id, &reply).await
    }

    /// Answers scale-downs whose workers acknowledged, or whose deadline passed.
    pub async fn answer_pending(
        &mut self,
        conn: &mut MultiplexedConnection,
        counts: &WorkerCounts,
    ) -> redis::RedisResult<()> {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let done = counts.pending_scale_down <= p.until_pending_at_most;
            if !done && Instant::now() < p.deadline {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i);
            let reply = if done {
                ScaleReply {
                    ok: true,
                    message: format!(
                        "scaled down to {} workers; every removed worker acknowledged",
                        p.target
                    ),
                    target: p.target,
                    workers: counts.clone(),
                }
            } else {
                let missing = counts.pending_scale_down - p.until_pending_at_most;
                ScaleReply {
                    ok: false,
                    message: format!(
                        "{missing} worker(s) did not acknowledge the scale-down in time (all busy?); \
                         the request stays queued and the next worker to finish a task will leave"
                    ),
                    target: p.target,
                    workers: counts.clone(),
                }
            };
            reply_to(conn, &p.id, &reply).await?;
        }
        Ok(())
    }
}

async fn reply_to(conn: &mut MultiplexedConnection, id: &str, reply: &ScaleReply) -> redis::RedisResult<()> {
    conn.set_ex(requests::reply_key(id), functions::runtime::json(reply), 60)
        .await
}
