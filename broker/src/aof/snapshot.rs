//! A rewrite's snapshot: a cheap copy of the keyspace taken under the lock (keys and elements
//! are reference-counted `Bytes`, so copying one is a counter increment), written out as the
//! shortest commands that rebuild it, away from the lock.

use super::encode_command;
use crate::db::{Keyspace, Value};
use crate::types::list::Elements;
use crate::types::{hash::Hash, set::Set};
use bytes::Bytes;
use std::io::Write;

/// Elements per RPUSH in a rewritten file, as Redis batches them (a replayed command stays small).
const ITEMS_PER_COMMAND: usize = 64;

/// One key's value as it was when the snapshot was taken.
enum Copied {
    Str(Bytes),
    /// A copy of the packed chunks: a few thousand buffer copies under the lock for a million
    /// elements, not one allocation each.
    List(Elements),
    /// Hashes and sets are copied whole: their elements are not reference-counted.
    Hash(Hash),
    Set(Set),
    /// Streams are copied whole (entries hold packed fields, not shared `Bytes`).
    Stream(Box<crate::types::stream::Stream>),
    /// The packed buffer of a small set; a large one's members shared with the live set (a
    /// counter increment each).
    ZSet(crate::types::zset::Entries),
}

/// The keyspace at one instant: `(database, key, value, expiry in Unix ms)`.
pub struct Snapshot {
    entries: Vec<(usize, Bytes, Copied, Option<u64>)>,
    /// The code of every library of functions, loaded again before the keys.
    pub functions: Vec<Bytes>,
}

/// What a snapshot holds, for the log line after a rewrite or at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub keys: usize,
    pub elements: usize,
}

impl Snapshot {
    /// Copies every key not yet expired at `now_ms`.
    pub fn take(keyspace: &Keyspace, now_ms: u64) -> Snapshot {
        let total: usize = keyspace.iter().map(|d| d.len()).sum();
        let mut entries = Vec::with_capacity(total);
        for (db, d) in keyspace.iter().enumerate() {
            for (key, value) in &d.map {
                let expiry = d.expiry_of(key);
                if expiry.is_some_and(|t| t <= now_ms) {
                    continue;
                }
                let copied = match value {
                    Value::Str(s) => Copied::Str(s.clone()),
                    Value::List(l) => Copied::List(l.items.clone()),
                    Value::Hash(h) => Copied::Hash(h.duplicate()),
                    Value::Set(s) => Copied::Set(s.duplicate()),
                    Value::Stream(s) => Copied::Stream(Box::new(s.duplicate())),
                    Value::ZSet(z) => Copied::ZSet(z.entries()),
                };
                entries.push((db, key.clone(), copied, expiry));
            }
        }
        Snapshot {
            entries,
            functions: Vec::new(),
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            keys: self.entries.len(),
            elements: self
                .entries
                .iter()
                .map(|(_, _, v, _)| match v {
                    Copied::Str(_) => 0,
                    Copied::List(l) => l.len(),
                    Copied::Hash(h) => h.len(),
                    Copied::Set(s) => s.len(),
                    Copied::Stream(s) => s.len(),
                    Copied::ZSet(z) => z.len(),
                })
                .sum(),
        }
    }

    /// Writes the commands that rebuild the snapshot to `out`, in chunks.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(64 * 1024);
        for code in &self.functions {
            encode_command(&mut buf, &[&b"FUNCTION"[..], b"LOAD", code]);
        }
        let mut db = None;
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by_key(|&i| self.entries[i].0);
        for i in order {
            let (d, key, value, expiry) = &self.entries[i];
            if db != Some(*d) {
                encode_command(&mut buf, &[b"SELECT", itoa::Buffer::new().format(*d).as_bytes()]);
                db = Some(*d);
            }
            match value {
                Copied::Str(s) => match expiry {
                    Some(t) => encode_command(
                        &mut buf,
                        &[
                            &b"SET"[..],
                            key,
                            s,
                            b"PXAT",
                            itoa::Buffer::new().format(*t).as_bytes(),
                        ],
                    ),
                    None => encode_command(&mut buf, &[&b"SET"[..], key, s]),
                },
                Copied::Stream(s) => {
                    for cmd in s.rebuild_commands(key) {
                        encode_command(&mut buf, &cmd);
                        if buf.len() >= 60 * 1024 {
                            out.write_all(&buf)?;
                            buf.clear();
                        }
                    }
                    pexpireat(&mut buf, key, *expiry);
                }
                Copied::ZSet(entries) => {
                    // `%.17g` scores read back as the same double.
                    let scores: Vec<String> = entries
                        .iter()
                        .map(|(_, s)| crate::reply::format_double(s))
                        .collect();
                    let pairs = entries
                        .iter()
                        .zip(&scores)
                        .map(|((m, _), s)| vec![s.as_bytes(), m]);
                    write_batched(out, &mut buf, b"ZADD", key, pairs)?;
                    pexpireat(&mut buf, key, *expiry);
                }
                Copied::List(items) => {
                    let items = items.iter().map(|b| vec![b]);
                    write_batched(out, &mut buf, b"RPUSH", key, items)?;
                    pexpireat(&mut buf, key, *expiry);
                }
                Copied::Hash(h) => {
                    write_batched(out, &mut buf, b"HSET", key, h.iter().map(|(f, v)| vec![f, v]))?;
                    pexpireat(&mut buf, key, *expiry);
                }
                Copied::Set(s) => {
                    let members: Vec<_> = s.iter().collect();
                    let members = members.iter().map(|m| vec![&m[..]]);
                    write_batched(out, &mut buf, b"SADD", key, members)?;
                    pexpireat(&mut buf, key, *expiry);
                }
            }
            if buf.len() >= 60 * 1024 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }
}

fn pexpireat(buf: &mut Vec<u8>, key: &[u8], expiry: Option<u64>) {
    if let Some(t) = expiry {
        encode_command(
            buf,
            &[&b"PEXPIREAT"[..], key, itoa::Buffer::new().format(t).as_bytes()],
        );
    }
}

/// Writes `command key …` for `ITEMS_PER_COMMAND` items (each one or more arguments) at a
/// time, flushing `buf` to `out` as it fills.
fn write_batched<'a>(
    out: &mut impl Write,
    buf: &mut Vec<u8>,
    command: &'a [u8],
    key: &'a [u8],
    items: impl Iterator<Item = Vec<&'a [u8]>>,
) -> std::io::Result<()> {
    let mut args: Vec<&[u8]> = vec![command, key];
    let mut n = 0;
    for item in items {
        args.extend(item);
        n += 1;
        if n == ITEMS_PER_COMMAND {
            encode_command(buf, &args);
            args.truncate(2);
            n = 0;
            if buf.len() >= 60 * 1024 {
                out.write_all(buf)?;
                buf.clear();
            }
        }
    }
    if n > 0 {
        encode_command(buf, &args);
    }
    Ok(())
}
