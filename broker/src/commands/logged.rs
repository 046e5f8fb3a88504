//! What a write command that changed data is logged as in the append-only file.
//!
//! Most are logged as they were sent: replaying them on the same data does the same thing.
//! Those whose effect depends on the clock are logged as their result instead, so that a
//! replay at another time rebuilds the same keyspace: a relative expiry becomes the absolute
//! time it was given (`PEXPIREAT`, `SET … PXAT`), and an expiry in the past becomes the
//! deletion it caused. A random choice (SPOP) is logged as what it removed.

use crate::db::Value;
use crate::engine::Engine;
use bytes::Bytes;

/// Logs the command `name` with `args`, run in database `db`, which changed data. Returns the
/// log offset covering it (see [`crate::aof::Feed::command`]).
pub(super) fn log(engine: &mut Engine, db: usize, name: &str, args: &[Bytes]) -> Option<u64> {
    match name {
        "set" | "setex" | "psetex" => {
            let key = args[1].clone();
            let d = &engine.keyspace[db];
            match (d.map.get(&key), d.expiry_of(&key)) {
                (Some(Value::Str(v)), Some(at)) => {
                    let (v, at) = (v.clone(), at.to_string());
                    engine.log(db, &[&b"SET"[..], &key, &v, b"PXAT", at.as_bytes()])
                }
                (Some(Value::Str(v)), None) => {
                    let v = v.clone();
                    engine.log(db, &[&b"SET"[..], &key, &v])
                }
                _ => engine.log(db, &[&b"DEL"[..], &key]),
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" | "getex" => {
            let key = args[1].clone();
            let d = &engine.keyspace[db];
            match (d.map.contains_key(&key), d.expiry_of(&key)) {
                (true, Some(at)) => {
                    let at = at.to_string();
                    engine.log(db, &[&b"PEXPIREAT"[..], &key, at.as_bytes()])
                }
                (true, None) => engine.log(db, &[&b"PERSIST"[..], &key]),
                (false, _) => engine.log(db, &[&b"DEL"[..], &key]),
            }
        }
        // Its float result is logged, not recomputed on replay (as Redis propagates it).
        "hincrbyfloat" => {
            let (key, field) = (args[1].clone(), args[2].clone());
            match engine.keyspace[db].map.get(&key) {
                Some(Value::Hash(h)) => match h.get(&field) {
                    Some(v) => {
                        let v = v.to_vec();
                        engine.log(db, &[&b"HSET"[..], &key, &field, &v])
                    }
                    None => engine.log(db, args),
                },
                _ => engine.log(db, args),
            }
        }
        // Logged by the command itself as the SREM (or DEL) of what it removed.
        "spop" => None,
        // A relative TTL is logged as the absolute time it gave, as Redis propagates it.
        "restore" if !args[4..].iter().any(|a| a.eq_ignore_ascii_case(b"absttl")) => {
            let key = args[1].clone();
            let d = &engine.keyspace[db];
            match (d.map.contains_key(&key), d.expiry_of(&key)) {
                (true, Some(at)) => {
                    let at = at.to_string();
                    engine.log(
                        db,
                        &[
                            &b"RESTORE"[..],
                            &key,
                            at.as_bytes(),
                            &args[3],
                            b"REPLACE",
                            b"ABSTTL",
                        ],
                    )
                }
                (true, None) => engine.log(db, &[&b"RESTORE"[..], &key, b"0", &args[3], b"REPLACE"]),
                (false, _) => engine.log(db, &[&b"DEL"[..], &key]),
            }
        }
        // Stream writes whose effect depends on the clock or a generated id log their effect
        // themselves (commands/streams.rs).
        "xadd" | "xtrim" | "xgroup" | "xreadgroup" | "xclaim" | "xautoclaim" => None,
        _ => engine.log(db, args),
    }
}
