//! Talking to a running node over the Redis protocol: `scale` requests and the node's status.
//!
//! A client LPUSHes a [`ScaleRequest`] to [`REQUESTS`]; the node's control loop takes it at its
//! next housekeeping tick, applies it and SETs a [`ScaleReply`] at `autoscale:scale_replies:<id>`
//! (expiring after a minute), which the client polls. A string, not a list: every list key gets
//! queue counters in the broker, and one-off reply keys must not add series to `/metrics`. The node also keeps its current
//! [`NodeStatus`] in [`STATUS`] (refreshed every tick, expiring after a few seconds, so a stopped
//! node disappears). The node's control connection is named [`CONTROLLER_NAME`], which is how a
//! client tells that a node is listening.

use crate::scaler::WorkerCounts;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

pub const REQUESTS: &str = "autoscale:scale_requests";
pub const STATUS: &str = "autoscale:node:status";
pub const CONTROLLER_NAME: &str = "autoscale-node:controller";
/// Where a job's driver (`run --redis`) announces its clock ([`JobRequest`]).
pub const JOB: &str = "autoscale:job";
/// Where any controller may publish the job's plan ([`PublishedPlan`]) instead of the node
/// reading it from `input_queue`.
pub const PLAN: &str = "autoscale:plan";

pub fn reply_key(id: &str) -> String {
    format!("autoscale:scale_replies:{id}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleOp {
    Add,
    Remove,
    Set,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleRequest {
    pub id: String,
    pub op: ScaleOp,
    pub n: u32,
    /// Seconds to wait for workers to acknowledge a scale-down before answering with an error.
    pub timeout_s: f64,
    /// Answer at all (`run` sends fire-and-forget `set`s).
    #[serde(default = "yes")]
    pub reply: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleReply {
    pub ok: bool,
    pub message: String,
    pub target: u32,
    pub workers: WorkerCounts,
}

/// A job announcing itself to a serving node: the clock its emitter runs on. The node adopts
/// the time scale (its policy decides in workload time) or refuses, and says which in its
/// status ([`NodeStatus::job`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub id: String,
    /// Wall seconds per workload second, as given to the emitter.
    pub time_scale: f64,
}

/// The node's answer to a [`JobRequest`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobAnswer {
    pub id: String,
    pub accepted: bool,
    pub message: String,
}

/// A job's plan published by a controller at [`PLAN`]: phase configurations as the emitter
/// takes them from `input_queue` (rates and shapes — a plan, never recorded arrivals), run one
/// after the other from `start_s`, seconds of the farm's clock (since `program_start_time`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedPlan {
    pub start_s: f64,
    pub phases: Vec<functions::messages::PhaseConfigMsg>,
}

/// What a node publishes about itself every tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub scaler: String,
    /// The policy deciding now (`bundled` names the model it runs: the calendar model while a
    /// plan is known).
    pub policy: String,
    pub target: u32,
    pub workers: WorkerCounts,
    pub decisions: u64,
    pub scaling_actions: u64,
    pub min_workers: u32,
    pub max_workers: u32,
    #[serde(default)]
    pub scale_ups: u64,
    #[serde(default)]
    pub scale_downs: u64,
    /// Wall seconds per workload second the node decides on.
    #[serde(default)]
    pub time_scale: f64,
    /// Where the job's plan comes from (`input_queue`, `autoscale:plan`, the run's own), if
    /// one is known.
    #[serde(default)]
    pub plan: Option<String>,
    /// The answer to the last job that announced itself.
    #[serde(default)]
    pub job: Option<JobAnswer>,
}

/// True when a node's controller is connected to this broker.
pub async fn controller_present(conn: &mut MultiplexedConnection) -> anyhow::Result<bool> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await?;
    let named = format!("name={CONTROLLER_NAME}");
    Ok(list.lines().any(|l| l.split(' ').any(|f| f == named)))
}

/// True when a node's controller is connected to this broker — or connects within `grace`
/// while the node's status, which it refreshes every tick and which expires 5 s after the last,
/// says a node served here a moment ago (it is restarting: its broker answers before its
/// control loop is back).
pub async fn node_serving(
    conn: &mut MultiplexedConnection,
    grace: std::time::Duration,
) -> anyhow::Result<bool> {
    if controller_present(conn).await? {
        return Ok(true);
    }
    let recent: bool = conn.exists(STATUS).await?;
    if !recent {
        return Ok(false);
    }
    eprintln!(
        "autoscale-node: a node served this broker seconds ago and its control loop is not connected now; waiting up to {} s for it",
        grace.as_secs()
    );
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if controller_present(conn).await? {
            return Ok(true);
        }
    }
    eprintln!("autoscale-node: no node came back; going on without one");
    Ok(false)
}

/// The node's last published status, if a node is running.
pub async fn node_status(conn: &mut MultiplexedConnection) -> anyhow::Result<Option<NodeStatus>> {
    let raw: Option<String> = conn.get(STATUS).await?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// Sends a request; with `wait`, blocks for the reply (up to the request's timeout + 10 s).
pub async fn send(
    conn: &mut MultiplexedConnection,
    op: ScaleOp,
    n: u32,
    timeout_s: f64,
    wait: bool,
) -> anyhow::Result<Option<ScaleReply>> {
    let req = ScaleRequest {
        id: uuid::Uuid::new_v4().simple().to_string(),
        op,
        n,
        timeout_s,
        reply: wait,
    };
    let _: () = conn.lpush(REQUESTS, serde_json::to_string(&req)?).await?;
    if !wait {
        return Ok(None);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs_f64(timeout_s + 10.0);
    let key = reply_key(&req.id);
    let reply = loop {
        let raw: Option<String> = redis::cmd("GETDEL").arg(&key).query_async(conn).await?;
        if raw.is_some() || tokio::time::Instant::now() >= deadline {
            break raw;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    match reply {
        Some(raw) => Ok(Some(serde_json::from_str(&raw)?)),
        None => {
            // Nobody answered: take the request back if the node never saw it.
            let _: i64 = conn.lrem(REQUESTS, 1, serde_json::to_string(&req)?).await?;
            anyhow::bail!(
                "the node did not answer within {:.0} s (is its control loop running?)",
                timeout_s + 10.0
            )
        }
    }
}
