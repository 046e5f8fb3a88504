//! The `local` scaler: workers are `autoscale-node worker` child processes of this node.

use super::{ScaleDown, Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use functions::protocol::{ControlMsg, Queues, WorkerId};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// One worker process.
struct LocalWorker {
    id: WorkerId,
    child: Child,
    /// Acknowledged a scale-down: it leaves on its own.
    leaving: bool,
}

/// Spawns workers connected to `redis_url`, reaps them, and never restarts one silently: a
/// worker that exits unasked is reported (its tasks are re-queued by the control loop) and
/// the next decision replaces it if the target still needs it.
pub struct LocalScaler {
    exe: PathBuf,
    redis_url: String,
    program_start: f64,
    workers: Vec<LocalWorker>,
    scale_down: ScaleDown,
}

impl LocalScaler {
    pub fn new(exe: PathBuf, redis_url: String, program_start: f64) -> LocalScaler {
        LocalScaler {
            exe,
            redis_url,
            program_start,
            workers: Vec::new(),
            scale_down: ScaleDown::default(),
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        // Lowest free number first, as the original reused worker names.
        let mut n = 1;
        while self.workers.iter().any(|w| w.id.index() == Some(n)) {
            n += 1;
        }
        let id = WorkerId::from_index(n);
        let child = function_process(
            &self.exe,
            "worker",
            &self.redis_url,
            id.as_str(),
            self.program_start,
            &[],
        )?;
        self.workers.push(LocalWorker {
            id,
            child,
            leaving: false,
        });
        Ok(())
    }

    /// Process ids of the running workers (tests kill one to check nothing is lost).
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }
}

impl Scaler for LocalScaler {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn counts(&self) -> WorkerCounts {
        let leaving = self.workers.iter().filter(|w| w.leaving).count() as u32;
        WorkerCounts {
            live: self.workers.len() as u32 - leaving,
            starting: 0,
            leaving,
            pending_scale_down: self.scale_down.pending,
            capped: None,
        }
    }

    fn reconcile<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async move {
            for id in self.scale_down.acknowledged(conn).await? {
                match self.workers.iter_mut().find(|w| w.id == id) {
                    Some(w) => w.leaving = true,
                    None => {
                        tracing::warn!(worker = %id, "scale-down ACK from a worker this node did not start")
                    }
                }
            }
            let mut vanished = Vec::new();
            let mut i = 0;
            while i < self.workers.len() {
                if let Ok(Some(status)) = self.workers[i].child.try_wait() {
                    let w = self.workers.remove(i);
                    if !w.leaving {
                        tracing::warn!(worker = %w.id, %status, "worker exited without being asked");
                        vanished.push(Vanished {
                            id: w.id.clone(),
                            reason: format!("process exited ({status})"),
                        });
                    }
                    continue;
                }
                i += 1;
            }
            Ok(vanished)
        })
    }

    fn scale_to<'a>(&'a mut self, target: u32, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            for _ in 0..self
                .scale_down
                .toward(conn, self.counts().effective(), target)
                .await?
            {
                self.spawn()?;
            }
            Ok(())
        })
    }

    fn shutdown<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            let (queue, end) = (
                Queues::default().worker_control_syn,
                ControlMsg::terminate().to_json(),
            );
            for _ in 0..self.workers.len() {
                let _: () = conn.lpush(&queue, &end).await?;
            }
            stop_children(
                self.workers.iter_mut().map(|w| &mut w.child),
                Duration::from_secs(5),
            )
            .await;
            self.workers.clear();
            Ok(())
        })
    }
}

/// Waits up to `grace` in total for the children to exit, then kills the rest.
pub async fn stop_children(children: impl Iterator<Item = &mut Child>, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    for child in children {
        if tokio::time::timeout_at(deadline, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

/// Starts `autoscale-node ROLE` connected to the broker; killed if the handle is dropped.
pub fn function_process(
    exe: &PathBuf,
    role: &str,
    url: &str,
    id: &str,
    program_start: f64,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(exe);
    // The broker URL (it may hold the password) travels in the environment, which only this
    // user can read, never on the command line, which `ps` shows to everyone.
    cmd.env("REDIS_URL", url);
    cmd.args([role, "--id", id, "--poll-interval-s", "0.2"])
        .args(["--parent-pid", &std::process::id().to_string()])
        .args(["--program-start-time", &program_start.to_string()])
        .args(extra)
        .env(
            "AUTOSCALE_LOG",
            std::env::var("AUTOSCALE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {role} {id}"))
}
