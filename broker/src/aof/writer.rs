//! The log file and the thread that owns it: group commit, fsync policies, and the switch to a
//! rewritten file.
//!
//! Commands are appended to an in-memory buffer under the engine's lock (so the buffer's order
//! is the execution order) and the writer thread writes whatever accumulated in one `write`,
//! then fsyncs as the policy says. Under load, every command that arrived while the previous
//! write and fsync ran goes out in the next single write + fsync: with `always` the cost is one
//! fsync per batch, not per command. Offsets are counted in bytes appended since the log was
//! opened; a connection whose reply needs a write to be durable waits until the durable offset
//! passes the offset its write ended at.

use super::Fsync;
use parking_lot::{Condvar, Mutex};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the writer waits before retrying after a failed write or fsync.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Bytes appended but not yet handed to the file.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Bytes appended since the log was opened (the offset the next append starts at).
    appended: u64,
    /// While a rewrite runs: a copy of everything appended since its snapshot, which the
    /// rewritten file must end with.
    diff: Option<Vec<u8>>,
}

/// What INFO persistence reports about the log.
#[derive(Debug)]
pub struct AofStatus {
    pub current_size: AtomicU64,
    /// The size after the last rewrite (or at start-up): automatic rewrites compare with it.
    pub base_size: AtomicU64,
    pub last_write_ok: AtomicBool,
    pub rewrite_in_progress: AtomicBool,
    /// A rewrite was asked for inside a transaction: it starts once the transaction is over.
    pub rewrite_scheduled: AtomicBool,
    pub last_rewrite_ok: AtomicBool,
    pub rewrites: AtomicU64,
    pub rewrites_consecutive_failures: AtomicU64,
    /// Duration of the last rewrite in seconds, -1 before the first.
    pub last_rewrite_time_s: AtomicI64,
    /// Unix ms the running rewrite started at.
    pub rewrite_started_ms: AtomicU64,
    pub writes: AtomicU64,
    pub fsyncs: AtomicU64,
    /// The last write or fsync error, for logs and -MISCONF replies.
    pub last_error: Mutex<Option<String>>,
}

impl Default for AofStatus {
    fn default() -> Self {
        AofStatus {
            current_size: AtomicU64::new(0),
            base_size: AtomicU64::new(0),
            last_write_ok: AtomicBool::new(true),
            rewrite_in_progress: AtomicBool::new(false),
            rewrite_scheduled: AtomicBool::new(false),
            last_rewrite_ok: AtomicBool::new(true),
            rewrites: AtomicU64::new(0),
            rewrites_consecutive_failures: AtomicU64::new(0),
            last_rewrite_time_s: AtomicI64::new(-1),
            rewrite_started_ms: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// The append-only file, shared by the engine's [`super::Feed`], the connections that wait for
/// durability, the writer thread and rewrites.
pub struct AofLog {
    path: PathBuf,
    fsync: AtomicU8,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// `None` while the first rewrite of a log enabled at runtime has not produced the file.
    file: Mutex<Option<File>>,
    /// The offset up to which appended bytes are durable as the policy defines it (fsynced
    /// for `always`, written otherwise).
    durable: tokio::sync::watch::Sender<u64>,
    appended: AtomicU64,
    stopping: AtomicBool,
    /// Set when bytes reached the file outside the writer thread but their fsync failed: the
    /// writer retries it.
    sync_wanted: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub status: AofStatus,
}

impl std::fmt::Debug for AofLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AofLog").field("path", &self.path).finish()
    }
}

impl AofLog {
    /// Opens (creating it if needed) the log at `path` for appending and starts its writer.
    pub fn open(path: &Path, fsync: Fsync) -> std::io::Result<Arc<AofLog>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let log = AofLog::new(path, fsync, Some(file));
        log.status.current_size.store(size, Relaxed);
        log.status.base_size.store(size, Relaxed);
        log.start()?;
        Ok(log)
    }

    /// A log with no file yet: a rewrite (started at once by the caller) creates it. Until then
    /// nothing is durable.
    pub fn without_file(path: &Path, fsync: Fsync) -> std::io::Result<Arc<AofLog>> {
        let log = AofLog::new(path, fsync, None);
        log.start()?;
        Ok(log)
    }

    fn new(path: &Path, fsync: Fsync, file: Option<File>) -> Arc<AofLog> {
        Arc::new(AofLog {
            path: path.to_path_buf(),
            fsync: AtomicU8::new(fsync.code()),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            file: Mutex::new(file),
            durable: tokio::sync::watch::channel(0).0,
            appended: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            sync_wanted: AtomicBool::new(false),
            thread: Mutex::new(None),
            status: AofStatus::default(),
        })
    }

    fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let log = self.clone();
        let handle = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || log.run())?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fsync(&self) -> Fsync {
        Fsync::from_code(self.fsync.load(Relaxed))
    }

    pub fn set_fsync(&self, fsync: Fsync) {
        self.fsync.store(fsync.code(), Relaxed);
        self.wake.notify_one();
    }

    /// Appends encoded commands; returns the offset at which they end. The writer is not woken
    /// here but by [`AofLog::wait_durable`], when a connection is about to answer: by then every
    /// connection that had input has run its commands, so one write (and fsync) covers them all,
    /// as Redis writes its log once per event-loop iteration. Writes nobody waits for (expired
    /// keys) go out within a second.
    pub fn append(&self, bytes: &[u8]) -> u64 {
        let end = {
            let mut p = self.pending.lock();
            p.buf.extend_from_slice(bytes);
            if let Some(d) = p.diff.as_mut() {
                d.extend_from_slice(bytes);
            }
            p.appended += bytes.len() as u64;
            p.appended
        };
        self.appended.store(end, Relaxed);
        end
    }

    /// Bytes appended since the log was opened.
    pub fn appended(&self) -> u64 {
        self.appended.load(Relaxed)
    }

    /// Bytes appended but not yet written (INFO `aof_buffer_length`).
    pub fn buffered(&self) -> usize {
        self.pending.lock().buf.len()
    }

    /// Wakes the writer for what was appended up to `offset`, and completes once it is
    /// durable — at once unless the policy is `always` (the other policies never hold a reply
    /// back).
    pub async fn wait_durable(&self, offset: u64) {
        if *self.durable.borrow() >= offset {
            return;
        }
        if self.fsync() != Fsync::Always {
            self.wake.notify_one();
            return;
        }
        // Group commit on the calling thread, as Redis fsyncs before it answers: the first
        // connection to answer writes and fsyncs what every connection appended, the others
        // find it durable. (Handing each batch to the writer thread cost a cross-thread wake
        // per held reply and a third busy thread on a 2-core machine: 0.58 of redis-server at
        // pipeline 1.) If the writer is mid-write, or the write fails, wait for the writer.
        if self.sync_now() && *self.durable.borrow() >= offset {
            return;
        }
        self.wake.notify_one();
        let mut rx = self.durable.subscribe();
        let _ = rx.wait_for(|&d| d >= offset).await;
    }

    /// Writes and fsyncs everything appended so far on the calling thread, then publishes it
    /// as durable. False, leaving the work to the writer thread, when the writer holds the
    /// file, there is no file yet (a rewrite will bring it), or the write or fsync failed.
    fn sync_now(&self) -> bool {
        let Some(mut file) = self.file.try_lock() else {
            return false;
        };
        let Some(f) = file.as_mut() else {
            return false;
        };
        let (chunk, end) = {
            let mut p = self.pending.lock();
            (std::mem::take(&mut p.buf), p.appended)
        };
        if !chunk.is_empty() {
            if let Err(e) = f.write_all(&chunk) {
                self.failed("writing", &e);
                let _ = f.set_len(self.status.current_size.load(Relaxed));
                let mut p = self.pending.lock();
                let later = std::mem::replace(&mut p.buf, chunk);
                p.buf.extend_from_slice(&later);
                return false;
            }
            self.status.current_size.fetch_add(chunk.len() as u64, Relaxed);
            self.status.writes.fetch_add(1, Relaxed);
        }
        if let Err(e) = f.sync_data() {
            self.failed("fsyncing", &e);
            self.sync_wanted.store(true, Relaxed);
            return false;
        }
        self.status.fsyncs.fetch_add(1, Relaxed);
        self.recovered();
        self.publish(end);
        true
    }

    fn publish(&self, offset: u64) {
        self.durable.send_if_modified(|d| {
            let newer = offset > *d;
            if newer {
                *d = offset;
            }
            newer
        });
    }

    fn failed(&self, what: &str, e: &std::io::Error) {
        let text = format!("{what} {}: {e}", self.path.display());
        if self.status.last_write_ok.swap(false, Relaxed) {
            tracing::error!("{text}; retrying every second (write commands are refused meanwhile)");
        }
        *self.status.last_error.lock() = Some(e.to_string());
    }

    fn recovered(&self) {
        if !self.status.last_write_ok.swap(true, Relaxed) {
            tracing::warn!(path = %self.path.display(), "append-only file writable again");
            *self.status.last_error.lock() = None;
        }
    }

    /// The writer thread: write what accumulated, fsync as the policy says, publish.
    fn run(self: Arc<Self>) {
        let mut last_fsync = Instant::now();
        let mut unsynced = false;
        loop {
            if self.sync_wanted.swap(false, Relaxed) {
                unsynced = true;
            }
            {
                let mut p = self.pending.lock();
                if p.buf.is_empty() && !self.stopping.load(Relaxed) {
                    let wait = if unsynced {
                        Duration::from_secs(1)
                            .saturating_sub(last_fsync.elapsed())
                            .max(Duration::from_millis(1))
                    } else {
                        Duration::from_secs(1)
                    };
                    self.wake.wait_for(&mut p, wait);
                }
            }
            let stopping = self.stopping.load(Relaxed);
            let mut ok = true;
            {
                // The file lock first, then the buffer: a rewrite switching files in between
                // could otherwise see bytes taken but not yet written.
                let mut file = self.file.lock();
                let (chunk, end) = {
                    let mut p = self.pending.lock();
                    (std::mem::take(&mut p.buf), p.appended)
                };
                match file.as_mut() {
                    Some(f) => {
                        if !chunk.is_empty() {
                            match f.write_all(&chunk) {
                                Ok(()) => {
                                    self.status.current_size.fetch_add(chunk.len() as u64, Relaxed);
                                    self.status.writes.fetch_add(1, Relaxed);
                                    unsynced = true;
                                }
                                Err(e) => {
                                    ok = false;
                                    self.failed("writing", &e);
                                    // Cut a partial write so that the retry does not repeat it.
                                    let _ = f.set_len(self.status.current_size.load(Relaxed));
                                    let mut p = self.pending.lock();
                                    let later = std::mem::replace(&mut p.buf, chunk);
                                    p.buf.extend_from_slice(&later);
                                }
                            }
                        }
                        let policy = self.fsync();
                        let due = match policy {
                            Fsync::Always => true,
                            Fsync::EverySec => last_fsync.elapsed() >= Duration::from_secs(1),
                            Fsync::No => false,
                        };
                        if ok && unsynced && (due || stopping) {
                            match f.sync_data() {
                                Ok(()) => {
                                    unsynced = false;
                                    last_fsync = Instant::now();
                                    self.status.fsyncs.fetch_add(1, Relaxed);
                                }
                                Err(e) => {
                                    ok = false;
                                    self.failed("fsyncing", &e);
                                }
                            }
                        }
                        if ok {
                            self.recovered();
                            if policy != Fsync::Always || !unsynced {
                                self.publish(end);
                            }
                        }
                    }
                    // No file yet: these bytes are in the running rewrite's copy, which
                    // publishes them once the new file holds them.
                    None => drop(chunk),
                }
            }
            if !ok {
                if stopping {
                    tracing::error!(path = %self.path.display(), "stopping with writes that could not be saved");
                    return;
                }
                std::thread::sleep(RETRY_AFTER);
                continue;
            }
            if stopping && self.pending.lock().buf.is_empty() {
                return;
            }
        }
    }

    /// Writes and fsyncs everything appended, then stops the writer thread. Returns whether
    /// everything appended reached the file.
    pub fn stop(&self) -> bool {
        self.stopping.store(true, Relaxed);
        self.wake.notify_one();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
        let all = self.pending.lock().buf.is_empty() && self.status.last_write_ok.load(Relaxed);
        if all {
            self.publish(self.appended());
        }
        all
    }

    /// Starts copying appended bytes for a rewrite whose snapshot is being taken right now
    /// (under the engine's lock, so that no command falls between the two). False if one is
    /// already running.
    pub fn begin_rewrite(&self) -> bool {
        if self.status.rewrite_in_progress.swap(true, Relaxed) {
            return false;
        }
        self.status
            .rewrite_started_ms
            .store(crate::metrics::unix_ms(), Relaxed);
        self.pending.lock().diff = Some(Vec::new());
        true
    }

    /// Ends a failed rewrite: the current file stays.
    pub fn abort_rewrite(&self, error: &dyn std::fmt::Display) {
        self.pending.lock().diff = None;
        tracing::error!(error = %error, "append-only file rewrite failed; the current file stays");
        self.status.last_rewrite_ok.store(false, Relaxed);
        self.status.rewrites_consecutive_failures.fetch_add(1, Relaxed);
        self.finish_status();
    }

    fn finish_status(&self) {
        let started = self.status.rewrite_started_ms.load(Relaxed);
        let secs = crate::metrics::unix_ms().saturating_sub(started) / 1000;
        self.status.last_rewrite_time_s.store(secs as i64, Relaxed);
        self.status.rewrite_in_progress.store(false, Relaxed);
    }

    /// Completes a rewrite: `temp` (at `temp_path`, holding the snapshot) gets every command
    /// appended since the snapshot, is made durable and replaces the log, and the writer
    /// carries on in it. Writes that arrive meanwhile wait in the buffer.
    pub fn finish_rewrite(&self, temp_path: &Path, mut temp: File) -> std::io::Result<u64> {
        let mut file = self.file.lock();
        let (diff, unwritten, end) = {
            let mut p = self.pending.lock();
            let diff = p.diff.take().unwrap_or_default();
            // What was appended before the snapshot is in it, and the rest is in `diff`.
            (diff, std::mem::take(&mut p.buf), p.appended)
        };
        let switched = (|| -> std::io::Result<(File, u64)> {
            temp.write_all(&diff)?;
            temp.sync_all()?;
            std::fs::rename(temp_path, &self.path)?;
            if let Some(dir) = self.path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)?.sync_all()?;
            }
            // In append mode, as at start-up: cutting a failed partial write (set_len) must
            // leave the next write at the end, not after a hole.
            let appending = OpenOptions::new().append(true).open(&self.path)?;
            let size = appending.metadata()?.len();
            Ok((appending, size))
        })();
        match switched {
            Ok((appending, size)) => {
                *file = Some(appending);
                drop(file);
                self.status.current_size.store(size, Relaxed);
                self.status.base_size.store(size, Relaxed);
                self.status.last_rewrite_ok.store(true, Relaxed);
                self.status.rewrites.fetch_add(1, Relaxed);
                self.status.rewrites_consecutive_failures.store(0, Relaxed);
                self.finish_status();
                self.publish(end);
                Ok(size)
            }
            Err(e) => {
                // The old file still lacks what the writer had not written: give it back.
                let mut p = self.pending.lock();
                let later = std::mem::replace(&mut p.buf, unwritten);
                p.buf.extend_from_slice(&later);
                drop(p);
                drop(file);
                let _ = std::fs::remove_file(temp_path);
                self.abort_rewrite(&e);
                Err(e)
            }
        }
    }

    /// Whether the log has grown enough since the last rewrite for an automatic one.
    pub fn wants_rewrite(&self, percentage: u64, min_size: u64) -> bool {
        if percentage == 0 || self.status.rewrite_in_progress.load(Relaxed) {
            return false;
        }
        let size = self.status.current_size.load(Relaxed);
        let base = self.status.base_size.load(Relaxed).max(1);
        size >= min_size && (size.saturating_sub(base)) * 100 / base >= percentage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aof-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn appends_reach_the_file_in_order() {
        let dir = temp_dir("order");
        let path = dir.join("a.aof");
        let log = AofLog::open(&path, Fsync::Always).unwrap();
        for i in 0..100 {
            log.append(format!("{i};").as_bytes());
        }
        assert!(log.stop());
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: String = (0..100).map(|i| format!("{i};")).collect();
        assert_eq!(text, expected);
        assert_eq!(log.status.current_size.load(Relaxed), expected.len() as u64);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_rewrite_keeps_what_was_appended_meanwhile() {
        let dir = temp_dir("rewrite");
        let path = dir.join("a.aof");
        let log = AofLog::open(&path, Fsync::EverySec).unwrap();
        log.append(b"old;");
        assert!(log.begin_rewrite());
        assert!(!log.begin_rewrite(), "one rewrite at a time");
        log.append(b"during;");
        let temp_path = dir.join("temp.aof");
        let mut temp = File::create(&temp_path).unwrap();
        temp.write_all(b"snapshot;").unwrap();
        log.finish_rewrite(&temp_path, temp).unwrap();
        log.append(b"after;");
        assert!(log.stop());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "snapshot;during;after;");
        assert!(!temp_path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failing_disk_is_reported_and_nothing_counts_as_durable() {
        // Every write to /dev/full fails with ENOSPC, as a full disk does.
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let log = AofLog::open(full, Fsync::Always).unwrap();
        let end = log.append(b"*1\r\n$4\r\nPING\r\n");
        log.wake.notify_one();
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.status.last_write_ok.load(Relaxed) {
            assert!(Instant::now() < deadline, "the failed write was not reported");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(log
            .status
            .last_error
            .lock()
            .as_deref()
            .is_some_and(|e| e.contains("space")));
        assert!(*log.durable.borrow() < end, "a failed write counted as durable");
        assert!(!log.stop(), "stop reports the lost writes");
    }

    #[test]
    fn growth_triggers_automatic_rewrites() {
        let dir = temp_dir("auto");
        let log = AofLog::open(&dir.join("a.aof"), Fsync::No).unwrap();
        log.status.base_size.store(100, Relaxed);
        log.status.current_size.store(150, Relaxed);
        assert!(!log.wants_rewrite(100, 0));
        log.status.current_size.store(200, Relaxed);
        assert!(log.wants_rewrite(100, 0));
        assert!(!log.wants_rewrite(100, 1000), "below the minimum size");
        assert!(!log.wants_rewrite(0, 0), "disabled");
        log.stop();
        let _ = std::fs::remove_dir_all(dir);
    }
}
