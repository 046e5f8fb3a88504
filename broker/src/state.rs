//! State shared by all connections: configuration, the engine behind its lock, the client
//! registry, server statistics, and each connection's own client state.

use crate::engine::{BlockOp, Engine, Waiter};
use crate::metrics::{unix_ms, QueueRegistry};
use crate::reply::{Protocol, Reply};
use crate::resp::Limits;
use crate::scripting::ScriptMonitor;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, Notify};

/// Broker configuration. Fields with units carry them in their names.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Password for the default user (`requirepass`); `None` disables AUTH.
    pub requirepass: Option<String>,
    /// Number of databases (`SELECT 0..n-1`).
    pub databases: usize,
    /// `proto-max-bulk-len`: the largest bulk string a client may send.
    pub proto_max_bulk_len: usize,
    /// `client-query-buffer-limit`: the most unparsed input one client may accumulate.
    pub client_query_buffer_limit: usize,
    /// `maxclients`: connections beyond it are refused with Redis's error. The binary lowers it
    /// to what the process's descriptor limit allows (see [`fd_limited_maxclients`]).
    pub maxclients: usize,
    /// `protected-mode`: without a password, only loopback clients (127.0.0.1, ::1) may
    /// connect; others get Redis's `-DENIED` text and are disconnected.
    pub protected_mode: bool,
    /// `timeout`: close idle clients after this many seconds (0 = never).
    pub timeout_s: u64,
    /// Active expiry runs this many times per second (`hz`).
    pub hz: u32,
    /// `busy-reply-threshold` (alias `lua-time-limit`): after a script has run this long,
    /// other clients get -BUSY and SCRIPT KILL is accepted.
    pub busy_reply_threshold_ms: u64,
    /// The allocator the process runs with, for INFO `mem_allocator` ("libc" is the system's).
    pub mem_allocator: &'static str,
    /// The append-only file (`appendonly`, `appendfsync`, `dir`, `appendfilename`, automatic
    /// rewrites).
    pub aof: crate::aof::AofConfig,
    /// `maxmemory`: past this many bytes of resident memory, commands that may grow memory are
    /// refused with `-OOM` (`noeviction`); 0 = no limit.
    pub maxmemory_bytes: u64,
    /// Values CONFIG SET gave the parameters nothing here depends on (by canonical name), so
    /// CONFIG GET echoes them; unset ones show Redis's default.
    pub stored_params: BTreeMap<&'static str, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            requirepass: None,
            databases: 16,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            maxclients: 10_000,
            protected_mode: true,
            timeout_s: 0,
            hz: 10,
            busy_reply_threshold_ms: 5000,
            mem_allocator: "libc",
            aof: crate::aof::AofConfig::default(),
            maxmemory_bytes: 0,
            stored_params: BTreeMap::new(),
        }
    }
}

/// Resident set size of this process in bytes, from /proc (0 where unavailable).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// The machine's physical memory (`MemTotal`, what Redis reports as `total_system_memory`);
/// 0 where /proc does not say.
pub fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// How often the resident size is read again when a limit is set: at a million writes a second
/// of 100-byte elements, 10 ms is about a megabyte past the limit at most.
const MEMORY_SAMPLE_US: u64 = 10_000;

/// `maxmemory` and the memory it is compared with: the process's resident set size, read from
/// /proc at most every 10 ms (a read costs a few µs, too much for every command).
#[derive(Debug, Default)]
pub struct MemoryGauge {
    pub limit_bytes: AtomicU64,
    used_bytes: AtomicU64,
    sampled_us: AtomicU64,
    /// The largest resident size seen (INFO `used_memory_peak`).
    peak_bytes: AtomicU64,
}

impl MemoryGauge {
    /// Whether a limit is set at all (one atomic load: the common case costs nothing more).
    pub fn limited(&self) -> bool {
        self.limit_bytes.load(Relaxed) > 0
    }

    /// Whether a limit is set and the resident size (sampled at most every 10 ms, `now_us`
    /// being the command's clock) is above it.
    pub fn over_limit(&self, now_us: u64) -> bool {
        let limit = self.limit_bytes.load(Relaxed);
        if limit == 0 {
            return false;
        }
        if now_us.saturating_sub(self.sampled_us.load(Relaxed)) >= MEMORY_SAMPLE_US {
            self.sampled_us.store(now_us, Relaxed);
            self.observe(resident_bytes());
        }
        self.used_bytes.load(Relaxed) > limit
    }

    /// Records a reading of the resident size; returns the peak so far.
    pub fn observe(&self, resident: u64) -> u64 {
        self.used_bytes.store(resident, Relaxed);
        self.peak_bytes.fetch_max(resident, Relaxed).max(resident)
    }
}

/// Descriptors kept for everything that is not a client (listeners, files, the runtime), as
/// Redis keeps 32.
pub const RESERVED_FDS: u64 = 32;

/// The largest `maxclients` the process's open-file limit allows, given `soft_limit`.
pub fn fd_limited_maxclients(requested: usize, soft_limit: u64) -> usize {
    requested.min(soft_limit.saturating_sub(RESERVED_FDS).max(1) as usize)
}

/// The process's soft open-file limit, if the platform tells.
pub fn open_file_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Whether a peer counts as local for protected mode: Redis accepts exactly 127.0.0.1 and ::1
/// (other 127/8 addresses are refused), and we also accept 127.0.0.1 arriving IPv4-mapped on
/// a dual-stack socket.
pub fn is_local_peer(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

impl BrokerConfig {
    /// Whether a client at `peer` must be turned away by protected mode.
    pub fn denies(&self, peer: &SocketAddr) -> bool {
        self.protected_mode && self.requirepass.is_none() && !is_local_peer(peer)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk_len: self.proto_max_bulk_len,
            ..Limits::default()
        }
    }
}

/// What other connections can see of one client (CLIENT LIST / KILL / INFO).
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<Option<String>>,
    pub lib_name: Mutex<Option<String>>,
    pub lib_ver: Mutex<Option<String>>,
    pub db: AtomicUsize,
    pub resp: AtomicUsize,
    pub last_interaction: Mutex<Instant>,
    /// The command table's index of the command running, or of the last one run
    /// (`usize::MAX` before the first).
    pub last_cmd: AtomicUsize,
    /// Its subcommand, lowercased, when it is a container (`client|list`).
    pub last_sub: Mutex<Option<String>>,
    /// Bytes in the query buffer: the batch being executed, or unparsed input (`qbuf`), and
    /// the buffer's free space (`qbuf-free`).
    pub qbuf: AtomicUsize,
    pub qbuf_free: AtomicUsize,
    /// Commands queued since MULTI (`multi=`, shown only while in a transaction).
    pub multi_queued: AtomicUsize,
    pub blocked: AtomicBool,
    pub in_multi: AtomicBool,
    pub killed: AtomicBool,
    /// Woken when the client is killed, so a blocked or idle connection notices at once.
    pub kill: Notify,
    /// Messages pushed to this client (pub/sub, MONITOR) and its subscription counts.
    pub pubsub: Arc<crate::pubsub::Mailbox>,
}

impl ClientInfo {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            db: AtomicUsize::new(0),
            resp: AtomicUsize::new(2),
            last_interaction: Mutex::new(Instant::now()),
            last_cmd: AtomicUsize::new(usize::MAX),
            last_sub: Mutex::new(None),
            qbuf: AtomicUsize::new(0),
            qbuf_free: AtomicUsize::new(0),
            multi_queued: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            in_multi: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            pubsub: Arc::new(crate::pubsub::Mailbox::new(id)),
        }
    }

    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }

    /// One `CLIENT LIST` line (without the trailing newline); `last_command` is the name of
    /// the command at [`ClientInfo::last_cmd`] (with its subcommand: `client|list`).
    pub fn describe(&self, last_command: Option<&str>) -> String {
        let now = Instant::now();
        let mut flags = String::new();
        if self.pubsub.monitor.load(Relaxed) {
            flags.push('O');
        }
        if self.pubsub.subscribed() {
            flags.push('P');
        }
        if self.in_multi.load(Relaxed) {
            flags.push('x');
        }
        if self.blocked.load(Relaxed) {
            flags.push('b');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.name.lock().as_deref().unwrap_or(""),
            now.duration_since(self.created).as_secs(),
            now.duration_since(*self.last_interaction.lock()).as_secs(),
            flags,
            self.db.load(Relaxed),
            self.pubsub.channels.load(Relaxed),
            self.pubsub.patterns.load(Relaxed),
            self.pubsub.shard_channels.load(Relaxed),
            if self.in_multi.load(Relaxed) {
                self.multi_queued.load(Relaxed) as i64
            } else {
                -1
            },
            self.qbuf.load(Relaxed),
            self.qbuf_free.load(Relaxed),
            last_command.unwrap_or("NULL"),
            self.resp.load(Relaxed),
            self.lib_name.lock().as_deref().unwrap_or(""),
            self.lib_ver.lock().as_deref().unwrap_or(""),
        )
    }
}

/// Counters for INFO stats / commandstats / errorstats.
#[derive(Default)]
pub struct ServerStats {
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub total_error_replies: AtomicU64,
    /// Bytes read from clients and written to them, and the reads and writes that moved them.
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub reads_processed: AtomicU64,
    pub writes_processed: AtomicU64,
    pub instantaneous: Mutex<Instantaneous>,
}

/// A rate as Redis's `instantaneous_*` fields give it: the counter read every 100 ms, the
/// rate over each interval kept for the last 16, their mean reported.
#[derive(Default)]
pub struct RateSamples {
    last_ms: u64,
    last_value: u64,
    samples: [f64; 16],
    next: usize,
}

impl RateSamples {
    pub fn sample(&mut self, now_ms: u64, value: u64) {
        if self.last_ms != 0 && now_ms > self.last_ms {
            let per_s =
                value.saturating_sub(self.last_value) as f64 * 1000.0 / (now_ms - self.last_ms) as f64;
            self.samples[self.next] = per_s;
            self.next = (self.next + 1) % self.samples.len();
        }
        self.last_ms = now_ms;
        self.last_value = value;
    }

    /// Per second, averaged over the samples.
    pub fn rate(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len() as f64
    }
}

/// The `instantaneous_*` rates of `INFO stats`: commands, input and output bytes.
#[derive(Default)]
pub struct Instantaneous {
    pub ops: RateSamples,
    pub input: RateSamples,
    pub output: RateSamples,
}

impl Instantaneous {
    /// Redis samples every 100 ms.
    pub const PERIOD_MS: u64 = 100;

    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.ops.last_ms + Self::PERIOD_MS
    }

    /// After CONFIG RESETSTAT: no samples, and the next one measured from zeroed counters
    /// since now.
    pub fn restart(&mut self, now_ms: u64) {
        for rate in [&mut self.ops, &mut self.input, &mut self.output] {
            *rate = RateSamples {
                last_ms: now_ms,
                ..RateSamples::default()
            };
        }
    }
}

impl ServerStats {
    /// Takes the rates' samples if 100 ms have passed since the last ones (`commands`: the
    /// total processed so far).
    pub fn sample_rates(&self, now_ms: u64, commands: u64) {
        let mut rates = self.instantaneous.lock();
        if !rates.due(now_ms) {
            return;
        }
        rates.ops.sample(now_ms, commands);
        rates.input.sample(now_ms, self.net_input_bytes.load(Relaxed));
        rates.output.sample(now_ms, self.net_output_bytes.load(Relaxed));
    }

    pub fn record_error(&self, text: &str) {
        self.total_error_replies.fetch_add(1, Relaxed);
        let code = text.split(' ').next().unwrap_or("ERR").to_string();
        *self.errors.lock().entry(code).or_default() += 1;
    }
}

/// Consecutive EVAL-family commands of one client, for the script thread, which runs them and
/// hands the client back with their replies, in order.
pub struct ScriptJob {
    pub commands: Vec<Vec<Bytes>>,
    pub client: ClientState,
    pub reply: oneshot::Sender<(ClientState, Vec<Reply>)>,
}

/// The state every connection shares.
pub struct Shared {
    /// The keyspace lock: the engine (keyspace, blocked clients, WATCH, statistics, scripts).
    pub engine: Mutex<Engine>,
    pub queues: Arc<QueueRegistry>,
    pub config: RwLock<BrokerConfig>,
    pub clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    pub stats: ServerStats,
    pub next_client_id: AtomicU64,
    pub started: Instant,
    pub started_unix_ms: u64,
    /// Wall-clock µs at `started`: wall time is derived from the monotonic clock, one read per
    /// command.
    started_unix_us: u64,
    pub port: AtomicUsize,
    pub run_id: String,
    /// Which script is running since when, and SCRIPT KILL's request.
    pub script_monitor: Arc<ScriptMonitor>,
    /// The queue of the script thread, started on the first script.
    pub script_jobs: std::sync::OnceLock<std::sync::mpsc::Sender<ScriptJob>>,
    /// This state's own handle, for work that must own a reference (scripts).
    pub me: std::sync::Weak<Shared>,
    /// Cancelled when the server stops (SHUTDOWN, or the shutdown given to `Broker::serve`):
    /// the accept loop, every connection and the background tasks end on it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The append-only file while it is on (the engine holds its feed).
    pub aof: RwLock<Option<Arc<crate::aof::AofLog>>>,
    /// Set while the log is replayed at start-up (INFO `loading`).
    pub loading: AtomicBool,
    pub memory: MemoryGauge,
}

impl Shared {
    /// Wall-clock µs since the epoch at the monotonic instant `at`.
    pub fn unix_us_at(&self, at: Instant) -> u64 {
        self.started_unix_us + at.saturating_duration_since(self.started).as_micros() as u64
    }

    pub fn new(config: BrokerConfig) -> Arc<Shared> {
        let queues = Arc::new(QueueRegistry::default());
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect();
        let memory = MemoryGauge::default();
        memory.limit_bytes.store(config.maxmemory_bytes, Relaxed);
        Arc::new_cyclic(|me| Shared {
            engine: Mutex::new(Engine::new(config.databases, queues.clone())),
            queues,
            config: RwLock::new(config),
            clients: Mutex::new(BTreeMap::new()),
            stats: ServerStats::default(),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            started_unix_ms: unix_ms(),
            started_unix_us: crate::metrics::unix_us(),
            port: AtomicUsize::new(0),
            run_id,
            script_monitor: Arc::default(),
            script_jobs: std::sync::OnceLock::new(),
            me: me.clone(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            aof: RwLock::new(None),
            loading: AtomicBool::new(false),
            memory,
        })
    }
}

/// Per-connection state that only its own connection task touches.
#[derive(Debug)]
pub struct ClientState {
    pub id: u64,
    pub db: usize,
    pub proto: Protocol,
    pub name: Option<String>,
    pub authenticated: bool,
    /// Commands queued by MULTI, or `None` outside a transaction.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A queued command was rejected: EXEC must abort.
    pub multi_error: bool,
    pub watched: Vec<(usize, Bytes)>,
    /// Set when a WATCHed key changes.
    pub dirty: Arc<AtomicBool>,
    pub info: Arc<ClientInfo>,
    /// Handlers may answer with pre-encoded [`Reply::Raw`] bytes:
    /// true for network clients, false where the structured reply is needed (scripts).
    pub raw_replies: bool,
    /// The append-only file's offset this client's last write ends at: with `appendfsync
    /// always`, its replies wait until the log is durable up to there.
    pub aof_wait: u64,
    /// CLIENT REPLY: whether replies are sent.
    pub reply_mode: ReplyMode,
    /// How long the call that blocked this client took (µs): the slow log reports a blocking
    /// command once it is served, with this duration, as Redis does.
    pub blocked_call_us: u64,
}

/// CLIENT REPLY's state: replies on, off, or off for one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// CLIENT REPLY SKIP ran: the next command's reply is dropped.
    SkipNext,
    /// This command's reply is dropped.
    Skip,
}

impl ReplyMode {
    /// Whether the reply of the command just run is dropped.
    pub fn silent(self) -> bool {
        matches!(self, ReplyMode::Off | ReplyMode::Skip)
    }

    /// The mode for the next command.
    pub fn after_command(self) -> ReplyMode {
        match self {
            ReplyMode::Skip => ReplyMode::On,
            ReplyMode::SkipNext => ReplyMode::Skip,
            other => other,
        }
    }
}

impl ClientState {
    /// Registers this client as blocked on `keys` (a command's `Outcome::Block`); returns the
    /// waiter's id and where its reply will arrive.
    pub fn block(
        &self,
        engine: &mut Engine,
        keys: Vec<Bytes>,
        op: BlockOp,
    ) -> (u64, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        let waiter = engine.block(Waiter {
            client: self.id,
            client_name: self.name.clone(),
            db: self.db,
            keys,
            op,
            tx,
        });
        self.info.blocked.store(true, Relaxed);
        (waiter, rx)
    }

    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> ClientState {
        ClientState {
            id: info.id,
            db: 0,
            proto: Protocol::Resp2,
            name: None,
            authenticated,
            multi: None,
            multi_error: false,
            watched: Vec::new(),
            dirty: Arc::new(AtomicBool::new(false)),
            info,
            raw_replies: true,
            aof_wait: 0,
            reply_mode: ReplyMode::On,
            blocked_call_us: 0,
        }
    }
}
