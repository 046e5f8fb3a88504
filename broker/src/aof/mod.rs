//! The append-only file: what is logged (the [`Feed`] the engine writes through), the log and
//! its writer thread ([`AofLog`]), parsing a log back ([`parse`]) and snapshots for rewrites
//! ([`snapshot`]).
//!
//! It knows the keyspace (to snapshot it) but not the command table: the command layer decides
//! what to log (`commands::logged`) and replays a file through its own dispatch
//! (`commands::persistence`). See docs/persistence.md for the format and the guarantees of each
//! `appendfsync` policy.

pub mod parse;
pub mod snapshot;
mod writer;

pub use writer::AofLog;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// When the log is made durable (`appendfsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Every write is fsynced before its reply leaves (group commit: one fsync covers every
    /// write that arrived while the previous one ran).
    Always,
    /// Written at once, fsynced once a second: a crash loses at most about a second.
    #[default]
    EverySec,
    /// Written at once, fsynced when the operating system decides.
    No,
}

impl Fsync {
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        }
    }

    fn code(self) -> u8 {
        match self {
            Fsync::Always => 0,
            Fsync::EverySec => 1,
            Fsync::No => 2,
        }
    }

    fn from_code(c: u8) -> Fsync {
        match c {
            0 => Fsync::Always,
            1 => Fsync::EverySec,
            _ => Fsync::No,
        }
    }
}

/// An `appendfsync` value that is none of `always`, `everysec`, `no`.
#[derive(Debug, thiserror::Error)]
#[error("appendfsync must be always, everysec or no (got '{0}')")]
pub struct BadFsync(pub String);

impl FromStr for Fsync {
    type Err = BadFsync;

    fn from_str(s: &str) -> Result<Fsync, BadFsync> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::EverySec),
            "no" => Ok(Fsync::No),
            _ => Err(BadFsync(s.to_string())),
        }
    }
}

/// Where and how the log is kept.
#[derive(Clone, Debug)]
pub struct AofConfig {
    /// `appendonly`: log writes and load the log at start-up.
    pub enabled: bool,
    pub fsync: Fsync,
    /// `dir`: the directory holding the log.
    pub dir: PathBuf,
    /// `appendfilename`.
    pub filename: String,
    /// `auto-aof-rewrite-percentage`: rewrite once the log has grown by this much over its
    /// size after the last rewrite (0 disables automatic rewrites).
    pub auto_rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size`: never rewrite automatically below this size.
    pub auto_rewrite_min_size_bytes: u64,
}

impl Default for AofConfig {
    fn default() -> Self {
        AofConfig {
            enabled: false,
            fsync: Fsync::EverySec,
            dir: PathBuf::from("."),
            filename: "appendonly.aof".into(),
            auto_rewrite_percentage: 100,
            auto_rewrite_min_size_bytes: 64 * 1024 * 1024,
        }
    }
}

impl AofConfig {
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.filename)
    }
}

/// Appends one command in RESP (`*N` then `$len` bulk strings) to `out`.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The engine's side of the log: turns the commands it is given into RESP, with a SELECT when
/// the database changes and MULTI … EXEC around a transaction's or a script's effects, and
/// hands them to the [`AofLog`] in execution order (the engine's lock orders them).
pub struct Feed {
    log: Arc<AofLog>,
    /// The database the log's reader will be in; `None` until the first SELECT.
    db: Option<usize>,
    /// Nesting of open blocks (EXEC, a script, EXEC running a script).
    depth: u32,
    /// The open block's commands, handed over whole when it closes so that a reader never
    /// sees half a transaction unless the file itself was cut.
    block: Vec<u8>,
}

impl Feed {
    pub fn new(log: Arc<AofLog>) -> Feed {
        Feed {
            log,
            db: None,
            depth: 0,
            block: Vec::new(),
        }
    }

    pub fn log(&self) -> &Arc<AofLog> {
        &self.log
    }

    /// Logs one command run in database `db`. Returns the log offset that covers it once
    /// appended (`None` while inside a block: the block's end returns it).
    pub fn command<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) -> Option<u64> {
        if self.depth > 0 && self.block.is_empty() {
            encode_command(&mut self.block, &[b"MULTI"]);
        }
        if self.db != Some(db) {
            encode_command(
                &mut self.block,
                &[b"SELECT", itoa::Buffer::new().format(db).as_bytes()],
            );
            self.db = Some(db);
        }
        encode_command(&mut self.block, args);
        if self.depth > 0 {
            return None;
        }
        let offset = self.log.append(&self.block);
        self.block.clear();
        Some(offset)
    }

    /// Whether a transaction's or a script's block is open (its commands are not in the log
    /// yet).
    pub fn in_block(&self) -> bool {
        self.depth > 0
    }

    /// Forgets which database the log's reader is in, so that the next command is preceded by
    /// a SELECT: a rewritten file ends in whatever database its snapshot ended in.
    pub fn forget_db(&mut self) {
        self.db = None;
    }

    /// Opens a block: the commands logged until the matching [`Feed::end_block`] are wrapped
    /// in MULTI … EXEC (nothing at all if none was logged).
    pub fn begin_block(&mut self) {
        self.depth += 1;
    }

    /// Closes a block; at the outermost one, hands it to the log and returns the offset that
    /// covers it (`None` if it logged nothing or an outer block is still open).
    pub fn end_block(&mut self) -> Option<u64> {
        self.depth = self.depth.saturating_sub(1);
        if self.depth > 0 || self.block.is_empty() {
            return None;
        }
        encode_command(&mut self.block, &[b"EXEC"]);
        let offset = self.log.append(&self.block);
        self.block.clear();
        Some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_names_round_trip() {
        for f in [Fsync::Always, Fsync::EverySec, Fsync::No] {
            assert_eq!(f.name().parse::<Fsync>().ok(), Some(f));
            assert_eq!(Fsync::from_code(f.code()), f);
        }
        assert_eq!("EVERYSEC".parse::<Fsync>().ok(), Some(Fsync::EverySec));
        assert!("sometimes".parse::<Fsync>().is_err());
    }

    #[test]
    fn commands_encode_as_resp() {
        let mut out = Vec::new();
        encode_command(&mut out, &[&b"SET"[..], b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
