//! What the three functions share: configuration, the broker connection with reconnect and
//! backoff, the run clock, dead-lettering, control polling and processing-list recovery.

use crate::protocol::{agree_program_start, ControlKind, ControlMsg, Queues, StartMsg};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Settings common to every function.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    /// `redis://[:password@]host:port/db`.
    pub redis_url: String,
    pub queues: Queues,
    /// This instance's id (`7` for `worker:7`).
    pub instance_id: String,
    /// Unix seconds the run started; `None` reads (or sets) the broker key `program_start_time`.
    pub program_start_time: Option<f64>,
    /// On SIGTERM, finish the current task within this long, else hand it back.
    pub grace_period_s: f64,
    /// Blocking waits return this often to check control queues and shutdown.
    pub poll_interval_s: f64,
    /// Connection state reported on the OpenFaaS health endpoint, if one is served.
    pub health: Option<std::sync::Arc<crate::http::HealthState>>,
}

impl Default for FunctionConfig {
    fn default() -> Self {
        FunctionConfig {
            redis_url: "redis://127.0.0.1:6379/".into(),
            queues: Queues::default(),
            instance_id: "1".into(),
            program_start_time: None,
            grace_period_s: 25.0,
            poll_interval_s: 1.0,
            health: None,
        }
    }
}

/// Errors that end a function.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("invalid redis URL {url:?}: {source}")]
    BadUrl { url: String, source: redis::RedisError },
    #[error("shut down before the broker became reachable")]
    Cancelled,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A broker connection that reconnects with exponential backoff and names itself.
pub struct Broker {
    client: redis::Client,
    health: Option<std::sync::Arc<crate::http::HealthState>>,
    name: String,
    pub conn: MultiplexedConnection,
    /// Seconds since the Unix epoch at which the run started.
    pub program_start: f64,
}

impl Broker {
    /// Connects (retrying with backoff until `cancel`), names the connection `name`, and
    /// agrees on the run's start time.
    pub async fn connect(
        config: &FunctionConfig,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Broker, FunctionError> {
        let client =
            redis::Client::open(config.redis_url.as_str()).map_err(|source| FunctionError::BadUrl {
                url: config.redis_url.clone(),
                source,
            })?;
        let conn = connect_with_backoff(&client, name, cancel).await?;
        let mut broker = Broker {
            client,
            health: config.health.clone(),
            name: name.to_string(),
            conn,
            program_start: 0.0,
        };
        broker.set_connected(true);
        broker.program_start = match config.program_start_time {
            Some(t) => t,
            None => broker.agree_program_start(cancel).await?,
        };
        Ok(broker)
    }

    /// The farm's clock through [`agree_program_start`], reconnecting until the broker answers.
    async fn agree_program_start(&mut self, cancel: &CancellationToken) -> Result<f64, FunctionError> {
        loop {
            match agree_program_start(&mut self.conn, unix_now()).await {
                Ok(t) => return Ok(t),
                Err(e) => {
                    tracing::warn!(error = %e, "could not agree on program_start_time; reconnecting");
                    self.reconnect(cancel).await?;
                }
            }
        }
    }

    /// Seconds since the run's start.
    pub fn now(&self) -> f64 {
        unix_now() - self.program_start
    }

    /// Replaces the connection after an error, with backoff.
    pub async fn reconnect(&mut self, cancel: &CancellationToken) -> Result<(), FunctionError> {
        self.set_connected(false);
        self.conn = connect_with_backoff(&self.client, &self.name, cancel).await?;
        self.set_connected(true);
        Ok(())
    }

    fn set_connected(&self, up: bool) {
        if let Some(h) = &self.health {
            h.connected.store(up, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Moves a bad message to `<queue>:dead` with the reason; the loop carries on.
    pub async fn dead_letter(&mut self, queue: &str, raw: &str, error: &str) -> redis::RedisResult<()> {
        tracing::warn!(queue, error, "dead-lettering a malformed message");
        let record = serde_json::json!({ "error": error, "message": raw, "dead_lettered_at": self.now() });
        self.conn
            .lpush::<_, _, ()>(Queues::dead(queue), record.to_string())
            .await
    }

    /// Dead-letters a message taken into a `processing` list, removing it from there in the
    /// same transaction, so that a crash can neither lose it nor dead-letter it twice.
    pub async fn dead_letter_from(
        &mut self,
        queue: &str,
        processing: &str,
        raw: &str,
        error: &str,
    ) -> redis::RedisResult<()> {
        tracing::warn!(queue, error, "dead-lettering a message");
        let record = serde_json::json!({ "error": error, "message": raw, "dead_lettered_at": self.now() });
        redis::pipe()
            .atomic()
            .lpush(Queues::dead(queue), record.to_string())
            .ignore()
            .lrem(processing, 1, raw)
            .ignore()
            .query_async(&mut self.conn)
            .await
    }

    /// Announces the function on its start queue (the original's START/SYNC message).
    pub async fn announce(&mut self, start_queue: &str, pod_name: &str) -> redis::RedisResult<()> {
        let msg = StartMsg::new(pod_name, self.now());
        self.conn.lpush::<_, _, ()>(start_queue, json(&msg)).await
    }
}

async fn connect_with_backoff(
    client: &redis::Client,
    name: &str,
    cancel: &CancellationToken,
) -> Result<MultiplexedConnection, FunctionError> {
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get_multiplexed_async_connection().await {
            Ok(mut conn) => {
                let named: redis::RedisResult<()> = redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(name)
                    .query_async(&mut conn)
                    .await;
                match named {
                    Ok(()) => return Ok(conn),
                    Err(e) => tracing::warn!(error = %e, "CLIENT SETNAME failed"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "broker unreachable")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Err(FunctionError::Cancelled),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Puts every message left in `processing` back at the consumer end of `queue`, oldest first
/// (the collector's results; a worker's tasks go back with [`requeue_tasks`], which keeps the
/// queued-work count). Returns how many were moved.
pub async fn requeue_processing(
    conn: &mut MultiplexedConnection,
    processing: &str,
    queue: &str,
) -> redis::RedisResult<usize> {
    let mut moved = 0;
    loop {
        let v: Option<String> = redis::cmd("LMOVE")
            .arg(processing)
            .arg(queue)
            .arg("RIGHT")
            .arg("RIGHT")
            .query_async(conn)
            .await?;
        if v.is_none() {
            return Ok(moved);
        }
        moved += 1;
    }
}

/// Moves one task from a worker's processing list back to the consumer end of the work queue
/// and, in the same step, takes its processing time off `taken_work_s` (the task waits
/// again). A script, so that the move and the count cannot part; an element that is not a
/// task moves without a count.
const REQUEUE_TASK: &str = r#"
local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT')
if v then
  local ok, task = pcall(cjson.decode, v)
  if ok and type(task) == 'table' then
    local t = task['task_processing_time_simulated']
    if type(t) == 'number' and t == t and t > 0 and t < 1e9 then
      redis.call('INCRBYFLOAT', KEYS[3], -t)
    end
  end
end
return v
"#;

/// Puts every task a worker left in `processing` back at the consumer end of the work queue,
/// oldest first, taking each one's processing time off the queue's `taken_work_s` (see
/// [`Queues::taken_work_s`]). Used by a worker at start-up and when it hands a task back, and
/// by the node for a vanished worker. Returns how many were moved.
pub async fn requeue_tasks(
    conn: &mut MultiplexedConnection,
    processing: &str,
    queues: &Queues,
) -> redis::RedisResult<usize> {
    let mut moved = 0;
    loop {
        let v: Option<String> = redis::cmd("EVAL")
            .arg(REQUEUE_TASK)
            .arg(3)
            .arg(processing)
            .arg(&queues.worker)
            .arg(queues.taken_work_s())
            .query_async(conn)
            .await?;
        if v.is_none() {
            return Ok(moved);
        }
        moved += 1;
    }
}

/// Serialises a message; our message types always serialise.
pub fn json<T: serde::Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).unwrap_or_else(|e| format!("{{\"error\":\"serialise: {e}\"}}"))
}

/// Pops one message from a control queue (non-blocking); malformed ones (an unknown `type`
/// included) are dead-lettered.
pub async fn poll_control(broker: &mut Broker, queue: &str) -> redis::RedisResult<Option<ControlKind>> {
    let raw: Option<String> = broker.conn.rpop(queue, None).await?;
    let Some(raw) = raw else { return Ok(None) };
    match serde_json::from_str::<ControlMsg>(&raw) {
        Ok(m) => Ok(Some(m.kind)),
        Err(e) => {
            broker.dead_letter(queue, &raw, &e.to_string()).await?;
            Ok(None)
        }
    }
}

/// The loop every function runs: `on_connect` (recovery, START) once connected and again after
/// every reconnect, then `step` until it returns `Some(exit)`. A broker error in either
/// reconnects with backoff and carries on; cancellation before a step returns `on_cancel`.
pub async fn supervise<T>(
    broker: &mut Broker,
    cancel: &CancellationToken,
    on_cancel: T,
    mut on_connect: impl AsyncFnMut(&mut Broker) -> redis::RedisResult<()>,
    mut step: impl AsyncFnMut(&mut Broker) -> redis::RedisResult<Option<T>>,
) -> Result<T, FunctionError> {
    let mut connected = false;
    loop {
        if cancel.is_cancelled() {
            return Ok(on_cancel);
        }
        let outcome = if connected {
            step(broker).await
        } else {
            on_connect(broker).await.map(|()| {
                connected = true;
                None
            })
        };
        match outcome {
            Ok(Some(exit)) => return Ok(exit),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "broker error; reconnecting");
                broker.reconnect(cancel).await?;
                connected = false;
            }
        }
    }
}
