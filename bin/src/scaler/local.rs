//! The `local` scaler: workers are child processes of this node — `autoscale-node worker`,
//! or any command line (`--worker-command`, e.g. an RQ, Celery or BullMQ worker).
//!
//! Our workers speak the farm's scale-down protocol (the idle one leaves). A command's
//! workers do not: to scale down, the newest is sent SIGTERM — the signal RQ, Celery and
//! BullMQ workers take as "finish the current job, then exit" — and SIGKILL if it has not
//! exited after the grace period.

use super::{ScaleDown, Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use functions::protocol::{ControlMsg, Queues, WorkerId};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// One worker process.
struct LocalWorker {
    id: WorkerId,
    child: Child,
    /// Acknowledged a scale-down (or was sent SIGTERM): it leaves on its own.
    leaving: bool,
    /// When a command's worker was sent SIGTERM.
    terminated_at: Option<Instant>,
}

/// A worker started from a command line, and how long it may take to stop.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub line: String,
    pub stop_grace: Duration,
}

/// Spawns workers connected to `redis_url`, reaps them, and never restarts one silently: a
/// worker that exits unasked is reported (its tasks are re-queued by the control loop) and
/// the next decision replaces it if the target still needs it.
pub struct LocalScaler {
    exe: PathBuf,
    /// Set: workers run this command instead of `autoscale-node worker`.
    command: Option<WorkerCommand>,
    redis_url: String,
    program_start: f64,
    workers: Vec<LocalWorker>,
    scale_down: ScaleDown,
}

impl LocalScaler {
    pub fn new(exe: PathBuf, redis_url: String, program_start: f64) -> LocalScaler {
        LocalScaler {
            exe,
            command: None,
            redis_url,
            program_start,
            workers: Vec::new(),
            scale_down: ScaleDown::default(),
        }
    }

    /// Workers run `command` (under `sh -c`) instead of `autoscale-node worker`.
    pub fn with_command(mut self, command: WorkerCommand) -> LocalScaler {
        self.command = Some(command);
        self
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        // Lowest free number first, as the original reused worker names.
        let mut n = 1;
        while self.workers.iter().any(|w| w.id.index() == Some(n)) {
            n += 1;
        }
        let id = WorkerId::from_index(n);
        let child = match &self.command {
            None => function_process(
                &self.exe,
                "worker",
                &self.redis_url,
                id.as_str(),
                self.program_start,
                &[],
            )?,
            Some(command) => command_process(&command.line, &self.redis_url, id.as_str(), n)?,
        };
        self.workers.push(LocalWorker {
            id,
            child,
            leaving: false,
            terminated_at: None,
        });
        Ok(())
    }

    /// Scales a command's workers: starts the missing ones, or sends SIGTERM to the newest.
    fn scale_commands(&mut self, target: u32) -> anyhow::Result<()> {
        let live = self.counts().live;
        for _ in live..target {
            self.spawn()?;
        }
        if target < live {
            let mut staying: Vec<&mut LocalWorker> = self.workers.iter_mut().filter(|w| !w.leaving).collect();
            staying.sort_by_key(|w| std::cmp::Reverse(w.id.index()));
            for w in staying.into_iter().take((live - target) as usize) {
                if let Some(pid) = w.child.id() {
                    super::signal::to_group(pid, super::signal::SIGTERM);
                }
                w.leaving = true;
                w.terminated_at = Some(Instant::now());
                tracing::info!(worker = %w.id, "asked to stop (SIGTERM)");
            }
        }
        Ok(())
    }

    /// SIGKILLs a command's workers that outstayed their grace after SIGTERM.
    fn kill_overdue(&mut self) {
        let Some(grace) = self.command.as_ref().map(|c| c.stop_grace) else {
            return;
        };
        for w in &mut self.workers {
            if w.terminated_at.is_some_and(|t| t.elapsed() >= grace) {
                if let Some(pid) = w.child.id() {
                    tracing::warn!(worker = %w.id, grace_s = grace.as_secs_f64(), "did not stop after SIGTERM: killed");
                    super::signal::to_group(pid, super::signal::SIGKILL);
                }
                w.terminated_at = None;
            }
        }
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
            let acknowledged = match self.command {
                Some(_) => Vec::new(),
                None => self.scale_down.acknowledged(conn).await?,
            };
            self.kill_overdue();
            for id in acknowledged {
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
            if self.command.is_some() {
                return self.scale_commands(target);
            }
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
            if let Some(command) = &self.command {
                for w in &self.workers {
                    if let Some(pid) = w.child.id() {
                        super::signal::to_group(pid, super::signal::SIGTERM);
                    }
                }
                let deadline = Instant::now() + command.stop_grace;
                for w in &mut self.workers {
                    if tokio::time::timeout_at(deadline, w.child.wait()).await.is_err() {
                        if let Some(pid) = w.child.id() {
                            super::signal::to_group(pid, super::signal::SIGKILL);
                        }
                        let _ = w.child.wait().await;
                    }
                }
                self.workers.clear();
                return Ok(());
            }
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

/// Starts `line` under `sh -c` in a process group of its own, with the broker's URL in
/// `REDIS_URL` and the worker's name and number in `AUTOSCALE_WORKER_ID` /
/// `AUTOSCALE_WORKER_INDEX`; its output goes to the node's standard error.
fn command_process(line: &str, url: &str, id: &str, index: u32) -> anyhow::Result<Child> {
    use std::os::fd::AsFd;
    let mut cmd = super::signal::shell_command(line);
    cmd.env("REDIS_URL", url)
        .env("AUTOSCALE_WORKER_ID", id)
        .env("AUTOSCALE_WORKER_INDEX", index.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => cmd.stdout(Stdio::from(fd)),
        Err(_) => cmd.stdout(Stdio::null()),
    };
    cmd.spawn()
        .with_context(|| format!("starting worker {id}: sh -c {line:?}"))
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
