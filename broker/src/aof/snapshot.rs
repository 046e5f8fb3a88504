//! A rewrite's snapshot: a cheap copy of the keyspace taken under the lock (keys and elements
//! are reference-counted `Bytes`, so copying one is a counter increment), written out as the
//! shortest commands that rebuild it, away from the lock.

use super::encode_command;
use crate::db::{Keyspace, Value};
use crate::types::list::Elements;
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
}

/// The keyspace at one instant: `(database, key, value, expiry in Unix ms)`.
pub struct Snapshot {
    entries: Vec<(usize, Bytes, Copied, Option<u64>)>,
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
                };
                entries.push((db, key.clone(), copied, expiry));
            }
        }
        Snapshot { entries }
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
                })
                .sum(),
        }
    }

    /// Writes the commands that rebuild the snapshot to `out`, in chunks.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(64 * 1024);
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
                Copied::List(items) => {
                    let mut elements = items.iter();
                    while elements.len() > 0 {
                        let mut args: Vec<&[u8]> = Vec::with_capacity(ITEMS_PER_COMMAND + 2);
                        args.push(b"RPUSH");
                        args.push(key);
                        args.extend(elements.by_ref().take(ITEMS_PER_COMMAND));
                        encode_command(&mut buf, &args);
                        if buf.len() >= 60 * 1024 {
                            out.write_all(&buf)?;
                            buf.clear();
                        }
                    }
                    if let Some(t) = expiry {
                        encode_command(
                            &mut buf,
                            &[&b"PEXPIREAT"[..], key, itoa::Buffer::new().format(*t).as_bytes()],
                        );
                    }
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
