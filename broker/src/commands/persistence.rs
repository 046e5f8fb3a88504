//! The append-only file's life: loading it at start-up through the command table, turning it on
//! and off at runtime, rewrites (BGREWRITEAOF and automatic), closing it at shutdown, and the
//! RDB commands we answer without an RDB.

use super::{dispatch, lookup_index, Ctx, Outcome};
use crate::aof::{parse, snapshot::Snapshot, AofLog, Feed};
use crate::db::Value;
use crate::engine::Engine;
use crate::reply::{msg, Reply};
use crate::state::{ClientInfo, ClientState, Shared};
use bytes::{Bytes, BytesMut};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Commands replayed per acquisition of the keyspace lock while loading, so that in-process
/// readers (the node's control loop) are not shut out for the whole load.
const REPLAY_PER_LOCK: usize = 4096;
/// How much of the file is read at a time.
const READ_CHUNK: usize = 1024 * 1024;
/// The start of a rewrite's temporary file name (then the process id and `.aof`).
const REWRITE_PREFIX: &str = "temp-rewriteaof-";

/// Why the log could not be loaded or opened.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("append-only file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("append-only file {path} is corrupt at byte offset {offset}: {reason} (fix or move the file; nothing was loaded past that offset)")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// What a load found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub bytes: u64,
    pub commands: u64,
    /// Bytes cut off the end: an incomplete last command (a crash mid-write) or an
    /// unfinished MULTI block.
    pub truncated_bytes: u64,
    pub keys: usize,
    pub elements: usize,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Keys and list elements in the keyspace.
fn count(engine: &Engine) -> (usize, usize) {
    let mut keys = 0;
    let mut elements = 0;
    for d in engine.keyspace.iter() {
        keys += d.len();
        elements += d
            .map
            .values()
            .map(|v| match v {
                Value::List(l) => l.len(),
                Value::Hash(h) => h.len(),
                Value::Set(s) => s.len(),
                Value::Stream(s) => s.len(),
                Value::ZSet(z) => z.len(),
                Value::Str(_) => 0,
            })
            .sum::<usize>();
    }
    (keys, elements)
}

/// Opens the log configured in `shared` (if `appendonly` is on): replays the file if there is
/// one, then logs every write from here on.
pub fn open(shared: &Arc<Shared>) -> Result<Option<LoadReport>, PersistError> {
    let config = shared.config.read().aof.clone();
    if !config.enabled {
        return Ok(None);
    }
    std::fs::create_dir_all(&config.dir).map_err(io_error(&config.dir))?;
    remove_stale_rewrites(&config.dir);
    let path = config.path();
    let report = if path.exists() {
        load(shared, &path)?
    } else {
        LoadReport::default()
    };
    let log = AofLog::open(&path, config.fsync).map_err(io_error(&path))?;
    let mut engine = shared.engine.lock();
    engine.feed = Some(Feed::new(log.clone()));
    *shared.aof.write() = Some(log);
    Ok(Some(report))
}

/// Deletes the temporary files of rewrites that a crash interrupted (the log they were to
/// replace is still complete).
fn remove_stale_rewrites(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(REWRITE_PREFIX) && name.ends_with(".aof") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %name, "removed the temporary file of an interrupted rewrite")
                }
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "could not remove the temporary file of an interrupted rewrite")
                }
            }
        }
    }
}

/// Replays the log at `path` into the keyspace. An incomplete last command (or MULTI block) is
/// cut off the file with a warning, as Redis's `aof-load-truncated yes`; anything else that is
/// not a well-formed known command is refused with its byte offset.
pub fn load(shared: &Arc<Shared>, path: &Path) -> Result<LoadReport, PersistError> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let total = file.metadata().map_err(io_error(path))?.len();
    let started = Instant::now();
    tracing::info!(path = %path.display(), bytes = total, "loading the append-only file");
    shared.loading.store(true, Relaxed);
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let mut client = ClientState::new(Arc::new(ClientInfo::new(0, addr, addr)), true);
    client.raw_replies = false;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut offset: u64 = 0; // file offset of buf[0]
    let mut complete: u64 = 0; // end of the last command outside an open MULTI
    let mut multi = false;
    let mut eof = false;
    let mut commands: u64 = 0;
    let mut last_progress = Instant::now();
    let mut engine = shared.engine.lock();
    engine.loading = true;
    let result = loop {
        match parse::command(&buf) {
            Ok(Some(parsed)) => {
                let frame = buf.split_to(parsed.len).freeze();
                let args: Vec<Bytes> = parsed.args.into_iter().map(|r| frame.slice(r)).collect();
                let start = offset;
                offset += parsed.len as u64;
                if lookup_index(&args[0]).is_none() {
                    break Err(PersistError::Corrupt {
                        path: path.to_path_buf(),
                        offset: start,
                        reason: format!("unknown command '{}'", String::from_utf8_lossy(&args[0])),
                    });
                }
                let name = args[0].to_ascii_lowercase();
                if name == b"multi" {
                    multi = true;
                }
                let outcome = dispatch(shared, &mut engine, &mut client, &args);
                if name == b"select" {
                    if let Outcome::Reply(Reply::Error(e)) = outcome {
                        // Everything after it would land in the wrong database.
                        break Err(PersistError::Corrupt {
                            path: path.to_path_buf(),
                            offset: start,
                            reason: format!(
                                "SELECT refused ({e}): fewer --databases than when the log was written?"
                            ),
                        });
                    }
                }
                if name == b"exec" || name == b"discard" {
                    multi = false;
                }
                if !multi {
                    complete = offset;
                }
                commands += 1;
                if commands.is_multiple_of(REPLAY_PER_LOCK as u64) {
                    parking_lot::MutexGuard::bump(&mut engine);
                    if last_progress.elapsed() >= Duration::from_secs(1) {
                        last_progress = Instant::now();
                        tracing::info!(
                            "loading the append-only file: {:.0} of {:.0} MB ({:.0} %)",
                            offset as f64 / 1e6,
                            total as f64 / 1e6,
                            offset as f64 * 100.0 / total.max(1) as f64
                        );
                    }
                }
            }
            Ok(None) if eof => break Ok(()),
            Ok(None) => {
                let before = buf.len();
                buf.resize(before + READ_CHUNK, 0);
                match file.read(&mut buf[before..]) {
                    Ok(n) => {
                        buf.truncate(before + n);
                        eof = n == 0;
                    }
                    Err(e) => {
                        buf.truncate(before);
                        break Err(io_error(path)(e));
                    }
                }
            }
            Err(corrupt) => {
                break Err(PersistError::Corrupt {
                    path: path.to_path_buf(),
                    offset: offset + corrupt.at as u64,
                    reason: corrupt.reason.to_string(),
                })
            }
        }
    };
    engine.loading = false;
    // A transaction the file ends inside of never ran.
    client.multi = None;
    // Queue counters start from the recovered lengths; replayed pushes and pops are not traffic.
    for (db, d) in engine.keyspace.iter().enumerate() {
        let lists: Vec<Bytes> = d
            .map
            .iter()
            .filter(|(_, v)| matches!(v, Value::List(_)))
            .map(|(k, _)| k.clone())
            .collect();
        engine.keyspace.queues.reset(db, &lists);
    }
    engine.stats.reset();
    let (keys, elements) = count(&engine);
    drop(engine);
    shared.loading.store(false, Relaxed);
    result?;
    let truncated = total - complete;
    if truncated > 0 {
        tracing::warn!(
            path = %path.display(),
            offset = complete,
            dropped_bytes = truncated,
            "the append-only file ends with an incomplete command (a crash mid-write?): dropping its last {truncated} bytes and truncating the file at byte {complete}"
        );
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_error(path))?;
        f.set_len(complete).map_err(io_error(path))?;
        f.sync_all().map_err(io_error(path))?;
    }
    tracing::info!(
        path = %path.display(),
        bytes = complete,
        commands,
        keys,
        elements,
        seconds = started.elapsed().as_secs_f64(),
        "append-only file loaded"
    );
    Ok(LoadReport {
        bytes: complete,
        commands,
        truncated_bytes: truncated,
        keys,
        elements,
    })
}

/// Why a rewrite did not start.
#[derive(Debug, PartialEq, Eq)]
pub enum RewriteRefused {
    Disabled,
    InProgress,
}

/// How a rewrite request was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum RewriteStarted {
    Now,
    /// Asked for inside a transaction, whose commands are only logged when it ends: the
    /// snapshot would already hold them and the copy of the log too. It starts at the next
    /// tick of the background task.
    Scheduled,
}

/// Starts a rewrite of the log: the keyspace is copied now (cheaply: reference-counted
/// values), written out as commands by a thread of its own, and the commands logged meanwhile
/// are appended to the new file before it replaces the old one.
pub fn start_rewrite(engine: &mut Engine, now_ms: u64) -> Result<RewriteStarted, RewriteRefused> {
    let (log, in_block) = engine
        .feed
        .as_ref()
        .map(|f| (f.log().clone(), f.in_block()))
        .ok_or(RewriteRefused::Disabled)?;
    if log.status.rewrite_in_progress.load(Relaxed) {
        return Err(RewriteRefused::InProgress);
    }
    if in_block {
        log.status.rewrite_scheduled.store(true, Relaxed);
        return Ok(RewriteStarted::Scheduled);
    }
    log.status.rewrite_scheduled.store(false, Relaxed);
    if !log.begin_rewrite() {
        return Err(RewriteRefused::InProgress);
    }
    // The commands logged from now on follow the snapshot in the new file.
    if let Some(f) = engine.feed.as_mut() {
        f.forget_db();
    }
    let copying = Instant::now();
    let mut snapshot = Snapshot::take(&engine.keyspace, now_ms);
    snapshot.functions = engine
        .scripting()
        .map(|s| s.libraries.codes())
        .unwrap_or_default();
    tracing::info!(
        keys = snapshot.counts().keys,
        lock_held_ms = copying.elapsed().as_secs_f64() * 1000.0,
        "rewriting the append-only file from a copy of the keyspace"
    );
    let spawned = std::thread::Builder::new().name("aof-rewrite".into()).spawn({
        let log = log.clone();
        move || rewrite(&log, &snapshot)
    });
    if let Err(e) = spawned {
        log.abort_rewrite(&e);
    }
    Ok(RewriteStarted::Now)
}

fn rewrite(log: &AofLog, snapshot: &Snapshot) {
    let started = Instant::now();
    let dir = log.path().parent().unwrap_or(Path::new("."));
    let temp_path = dir.join(format!("{REWRITE_PREFIX}{}.aof", std::process::id()));
    let written = (|| -> std::io::Result<std::fs::File> {
        let mut out = BufWriter::with_capacity(256 * 1024, std::fs::File::create(&temp_path)?);
        snapshot.write_to(&mut out)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        Ok(file)
    })();
    let file = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&temp_path);
            log.abort_rewrite(&e);
            return;
        }
    };
    if let Ok(size) = log.finish_rewrite(&temp_path, file) {
        let c = snapshot.counts();
        tracing::info!(
            path = %log.path().display(),
            bytes = size,
            keys = c.keys,
            elements = c.elements,
            seconds = started.elapsed().as_secs_f64(),
            "append-only file rewritten"
        );
    }
}

/// Turns the log on at runtime (CONFIG SET appendonly yes): as Redis does, the file starts as a
/// rewrite of the current keyspace, and every write from now on follows it.
pub fn enable(shared: &Shared, engine: &mut Engine, now_ms: u64) -> Result<(), String> {
    if engine.feed.is_some() {
        return Ok(());
    }
    let config = shared.config.read().aof.clone();
    std::fs::create_dir_all(&config.dir).map_err(|e| format!("{}: {e}", config.dir.display()))?;
    let log = AofLog::without_file(&config.path(), config.fsync).map_err(|e| e.to_string())?;
    engine.feed = Some(Feed::new(log.clone()));
    *shared.aof.write() = Some(log);
    start_rewrite(engine, now_ms)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// Turns the log off (CONFIG SET appendonly no, or shutdown): what was appended is written and
/// fsynced first. Returns the log that was closed and whether everything reached the file.
pub fn disable(shared: &Shared, engine: &mut Engine) -> Option<(Arc<AofLog>, bool)> {
    let feed = engine.feed.take()?;
    *shared.aof.write() = None;
    let log = feed.log().clone();
    let complete = log.stop();
    Some((log, complete))
}

/// At shutdown: flushes and fsyncs the log and says what it holds, or, without one, warns
/// about the queued elements that are lost.
pub fn close(shared: &Shared) {
    let mut engine = shared.engine.lock();
    let (keys, elements) = count(&engine);
    match disable(shared, &mut engine) {
        Some((log, true)) => tracing::info!(
            path = %log.path().display(),
            keys,
            elements,
            "append-only file flushed and fsynced: {keys} keys and {elements} list elements persisted"
        ),
        Some((log, false)) => tracing::error!(
            path = %log.path().display(),
            keys,
            elements,
            "stopping with writes the append-only file could not take: the last ones are lost"
        ),
        None if elements > 0 => tracing::warn!(
            keys,
            elements,
            "persistence is off (appendonly no): {elements} queued list elements in {keys} keys are discarded"
        ),
        None => {}
    }
}

/// BGREWRITEAOF.
pub fn bgrewriteaof(ctx: &mut Ctx) -> Outcome {
    match start_rewrite(ctx.engine, ctx.now_ms) {
        Ok(RewriteStarted::Now) => Reply::status("Background append only file rewriting started").into(),
        Ok(RewriteStarted::Scheduled) => {
            Reply::status("Background append only file rewriting scheduled").into()
        }
        Err(RewriteRefused::InProgress) => Reply::error(msg::AOF_REWRITE_IN_PROGRESS).into(),
        Err(RewriteRefused::Disabled) => Reply::error(msg::AOF_DISABLED).into(),
    }
}

/// SAVE and BGSAVE: there is no RDB file here, only the append-only log.
pub fn save(_ctx: &mut Ctx) -> Outcome {
    Reply::error(msg::NO_RDB).into()
}
