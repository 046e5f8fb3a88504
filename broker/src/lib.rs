//! A Redis-protocol (RESP2/RESP3) in-memory broker whose lists are instrumented queues.
//!
//! Any Redis client (redis-cli, redis-py, redis-rs, KEDA) can talk to it. Every list key is a
//! queue with counters kept on the command path — pushes, pops, length, oldest-element age,
//! time-in-queue histogram, blocked consumers — readable in-process without a network hop.
//!
//! # Layout
//! Bottom-up; each module uses only those above it in this list (docs/architecture.md draws it).
//! - [`reply`]: replies, their RESP2/RESP3 encoding, and every error text ([`reply::msg`]).
//! - [`resp`]: request parsing (multibulk and inline) with Redis's limits.
//! - [`metrics`]: per-queue counters, snapshots and the [`QueueHook`] trait.
//! - [`version`]: the Redis version whose behaviour we reproduce.
//! - [`db`]: the keyspace — values, databases, expiry, list push and pop with their counters. It
//!   knows nothing of commands, clients or Lua.
//! - [`aof`]: the append-only file — what the engine logs, the writer thread and its fsync
//!   policies, parsing a log back, rewrite snapshots (docs/persistence.md).
//! - [`scripting`]: the Lua 5.1 interpreter with Redis's API and sandbox; `scripting::call`
//!   (`redis.call`), `scripting::sandbox` (read-only tables, text-only loading, the stop hook)
//!   and `scripting::reply` (returned tables → RESP) are its raw Lua API parts,
//!   `scripting::libs` its `cjson`, `bit`, `struct` and `cmsgpack`, `scripting::monitor` what
//!   other connections see of a running script. It reaches commands only through
//!   [`scripting::CommandRunner`].
//! - [`engine`]: the keyspace plus what changes atomically with it (blocked clients, WATCH,
//!   command statistics) and the interpreter's slot, behind one lock.
//! - [`state`]: configuration, the shared state (the engine behind its lock, the client
//!   registry, server statistics) and each connection's client state.
//! - [`commands`]: the command table, typed flags, dispatch, and one module per command family
//!   (`commands::persistence` loads, rewrites and closes the append-only file).
//! - `conn` (one connection's read → execute → reply loop), `script_thread` (where scripts not
//!   known to be short run), and `harness` (in-process clients and input generators for the
//!   fuzzers; see docs/fuzzing.md).
//!
//! # Example
//! ```no_run
//! use broker::{Broker, BrokerConfig, QueueEvent, QueueHook};
//! use std::sync::Arc;
//!
//! struct PushLogger;
//! impl QueueHook for PushLogger {
//!     fn on_event(&self, event: &QueueEvent) {
//!         if let QueueEvent::Pushed { queue, length, .. } = event {
//!             eprintln!("{} now holds {length}", String::from_utf8_lossy(queue));
//!         }
//!     }
//! }
//!
//! # async fn demo() -> std::io::Result<()> {
//! let broker = Broker::new(BrokerConfig::default());
//! broker.queues().add_hook(Arc::new(PushLogger));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let queues = broker.queues();
//! tokio::spawn(broker.serve(listener, std::future::pending()));
//! // ... clients push to "worker_queue" over TCP ...
//! if let Some(q) = queues.queue(0, b"worker_queue") {
//!     println!("length {} oldest {:.1} ms p99 wait {:.1} ms", q.length, q.oldest_age_ms, q.wait_p99_ms);
//! }
//! # Ok(()) }
//! ```

pub mod aof;
pub mod commands;
mod conn;
pub mod db;
pub mod engine;
pub mod glob;
#[doc(hidden)]
pub mod harness;
pub mod metrics;
pub mod pubsub;
pub mod queue_view;
pub mod reply;
pub mod resp;
mod script_thread;
pub mod scripting;
pub mod state;
pub mod types;
pub mod version;

pub use commands::persistence::{LoadReport, PersistError};
pub use metrics::{QueueEvent, QueueHook, QueueKind, QueueRegistry, QueueStats, ScoreUnit};
pub use state::BrokerConfig;

use state::Shared;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for connections to finish their current batch.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The broker: shared state plus the accept loop.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl Broker {
    pub fn new(config: BrokerConfig) -> Broker {
        Broker {
            shared: Shared::new(config),
        }
    }

    /// The per-queue metrics registry: snapshots and hook registration, in-process.
    pub fn queues(&self) -> Arc<QueueRegistry> {
        self.shared.queues.clone()
    }

    /// Every queue — lists, streams' consumer groups, delayed sets — as INFO and QSTATS list
    /// them (see [`queue_view::listed`]), and how many were left out. When the keyspace
    /// stays busy (a long script) only the lists, which need no lock, are listed.
    pub fn listed_queues(&self) -> (Vec<QueueStats>, usize) {
        let queues = &self.shared.queues;
        let limit = metrics::MAX_LISTED_QUEUES;
        self.read(|keyspace, _| queue_view::listed(queues, keyspace, limit))
            .unwrap_or_else(|| queues.listed(limit))
    }

    /// The queues `key` holds (a list, one per consumer group of a stream, a delayed set),
    /// read in-process; `None` when the keyspace stays busy.
    pub fn queues_of(&self, db: usize, key: &[u8]) -> Option<Vec<QueueStats>> {
        let key = bytes::Bytes::copy_from_slice(key);
        let queues = &self.shared.queues;
        self.read(|keyspace, _| queue_view::of_key(queues, keyspace, db, &key))
    }

    /// Reads the keyspace in-process, for the node's control loop (no network hop). `None`
    /// when the keyspace stays busy (a long script) for more than 100 ms: the caller skips
    /// this round rather than stall.
    fn read<R>(&self, f: impl FnOnce(&db::Keyspace, u64) -> R) -> Option<R> {
        let engine = self.shared.engine.try_lock_for(Duration::from_millis(100))?;
        Some(f(&engine.keyspace, metrics::unix_ms()))
    }

    /// The values of string keys in database `db` (`None` for a missing, expired or
    /// non-string key), e.g. the collector's totals.
    pub fn get_strings(&self, db: usize, keys: &[&str]) -> Option<Vec<Option<bytes::Bytes>>> {
        self.read(|keyspace, now| {
            keys.iter()
                .map(|k| match keyspace.live(db, k.as_bytes(), now) {
                    Some(db::Value::Str(b)) => Some(b.clone()),
                    _ => None,
                })
                .collect()
        })
    }

    /// The length of list `key` and up to `n` of its elements from the head (the newest, for a
    /// queue producers LPUSH to). A missing key is an empty list.
    pub fn list_head(&self, db: usize, key: &str, n: usize) -> Option<(usize, Vec<bytes::Bytes>)> {
        self.read(|keyspace, now| match keyspace.live(db, key.as_bytes(), now) {
            Some(db::Value::List(l)) => (
                l.len(),
                l.items
                    .iter()
                    .take(n)
                    .map(bytes::Bytes::copy_from_slice)
                    .collect(),
            ),
            _ => (0, Vec::new()),
        })
    }

    /// The length of list `key` and up to `n` of its elements from the tail, the tail first
    /// (the oldest, for a queue producers LPUSH to and consumers take from the right). A
    /// missing key is an empty list.
    pub fn list_tail(&self, db: usize, key: &str, n: usize) -> Option<(usize, Vec<bytes::Bytes>)> {
        self.read(|keyspace, now| match keyspace.live(db, key.as_bytes(), now) {
            Some(db::Value::List(l)) => (
                l.len(),
                l.items
                    .iter_rev()
                    .take(n)
                    .map(bytes::Bytes::copy_from_slice)
                    .collect(),
            ),
            _ => (0, Vec::new()),
        })
    }

    /// Completes when the broker is told to stop: by a client's SHUTDOWN, or by the shutdown
    /// future given to [`Broker::serve`]. A binary selects on it to exit with its broker.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.shutdown.clone().cancelled_owned()
    }

    /// Number of connected clients.
    pub fn connected_clients(&self) -> usize {
        self.shared.clients.lock().len()
    }

    /// Names (`CLIENT SETNAME`) of the connected clients, by client id.
    pub fn client_names(&self) -> Vec<(u64, Option<String>)> {
        self.shared
            .clients
            .lock()
            .iter()
            .map(|(id, c)| (*id, c.name.lock().clone()))
            .collect()
    }

    /// Accepts connections on `listener` until `shutdown` completes or a client sends
    /// SHUTDOWN, then closes every connection (each finishes the batch it is executing) and
    /// returns. A broker serves once: once stopped, serving again returns at once.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            self.shared
                .port
                .store(addr.port() as usize, std::sync::atomic::Ordering::Relaxed);
        }
        // SHUTDOWN cancels this token too.
        let token = self.shared.shutdown.clone();
        let mut accept_failures = AcceptFailures::new();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(active_expiry(self.shared.clone(), token.clone()));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        accept_failures.succeeded();
                        tasks.spawn(conn::serve_connection(self.shared.clone(), stream, token.clone()));
                    }
                    Err(e) => accept_failures.failed(&listener, &e).await,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = &mut shutdown => break,
            }
        }
        token.cancel();
        // A script still running would hold the keyspace forever: stop it (SHUTDOWN NOSAVE).
        self.shared
            .script_monitor
            .kill
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("connections did not close within the grace period");
        }
        // Every connection has finished its last batch: nothing more will be logged.
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || commands::persistence::close(&shared)).await;
        Ok(())
    }

    /// Opens the append-only file the configuration asks for (`aof.enabled`), replaying it into
    /// the keyspace first. Call once, before [`Broker::serve`]. `None` when the log is off.
    pub fn open_log(&self) -> Result<Option<LoadReport>, PersistError> {
        commands::persistence::open(&self.shared)
    }
}

/// What the accept loop does when `accept` fails — almost always because the process ran out
/// of file descriptors (EMFILE/ENFILE). Spinning on the error would burn a core and flood the
/// log while the clients in the backlog hang with no answer. Instead: one descriptor is held in
/// reserve; on EMFILE it is freed for a moment to accept the next client, tell it
/// `-ERR max number of clients reached` and close it, so clients get an answer; the loop backs
/// off (doubling, up to a second) and logs once per burst of failures.
struct AcceptFailures {
    reserve: Option<std::fs::File>,
    backoff: Duration,
    failures: u64,
    last_log: Option<std::time::Instant>,
}

impl AcceptFailures {
    fn new() -> AcceptFailures {
        AcceptFailures {
            reserve: std::fs::File::open("/dev/null").ok(),
            backoff: Duration::from_millis(1),
            failures: 0,
            last_log: None,
        }
    }

    async fn failed(&mut self, listener: &TcpListener, error: &std::io::Error) {
        self.failures += 1;
        let now = std::time::Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::warn!(
                error = %error,
                failures = self.failures,
                "accepting clients fails (out of file descriptors? raise `ulimit -n` or lower maxclients)"
            );
            self.last_log = Some(now);
        }
        if self.reserve.take().is_some() {
            // The reserve is closed now: answer one waiting client instead of leaving it hanging.
            if let Ok(Ok((mut stream, _))) =
                tokio::time::timeout(Duration::from_millis(1), listener.accept()).await
            {
                use tokio::io::AsyncWriteExt;
                let line = format!("-{}\r\n", reply::msg::MAX_CLIENTS);
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), stream.write_all(line.as_bytes())).await;
            }
            self.reserve = std::fs::File::open("/dev/null").ok();
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
    }

    /// A connection was accepted: failures are over.
    fn succeeded(&mut self) {
        self.backoff = Duration::from_millis(1);
    }
}

/// Deletes expired keys in the background, `hz` times per second, a bounded batch at a time.
async fn active_expiry(shared: Arc<Shared>, token: CancellationToken) {
    let mut last_forget = metrics::unix_ms();
    loop {
        let hz = shared.config.read().hz.max(1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(1000 / u64::from(hz))) => {}
            _ = token.cancelled() => return,
        }
        // A long script holds the keyspace: skip this round rather than block the event loop.
        if let Some(mut engine) = shared.engine.try_lock_for(Duration::from_micros(500)) {
            let now = metrics::unix_ms();
            engine.active_expire(now, 200);
            shared.stats.sample_rates(now, engine.stats.total);
            if let Some(log) = engine.feed.as_ref().map(|f| f.log().clone()) {
                let scheduled = log
                    .status
                    .rewrite_scheduled
                    .load(std::sync::atomic::Ordering::Relaxed);
                let grown = {
                    let c = shared.config.read();
                    log.wants_rewrite(c.aof.auto_rewrite_percentage, c.aof.auto_rewrite_min_size_bytes)
                };
                if grown {
                    tracing::info!(
                        "the append-only file has grown past auto-aof-rewrite-percentage: rewriting it"
                    );
                }
                if scheduled || grown {
                    let _ = commands::persistence::start_rewrite(&mut engine, now);
                }
            }
            if now.saturating_sub(last_forget) >= 10_000 {
                last_forget = now;
                engine
                    .keyspace
                    .queues
                    .forget_idle(now, metrics::IDLE_QUEUE_FORGET_MS);
            }
        }
    }
}
