//! Keyspace hits and misses (`INFO stats`) and `keymiss` events, counted where Redis counts
//! them: at each lookup of a key *for reading* (Redis's `lookupKeyRead`). A read-only
//! command's keys are all read; a few write commands read some of theirs (the sources of
//! SINTERSTORE, ZUNIONSTORE, BITOP, COPY, ZRANGESTORE, SORT; the key of GETDEL, GETEX, GETSET,
//! SET … GET, XACK, XCLAIM and XAUTOCLAIM). Lookups for writing count nothing, as in Redis.
//!
//! Each key is looked up here, before the command runs, in the order Redis's handlers look
//! them up; a key that is due to expire is expired first (its `expired` event precedes the
//! `keymiss`, as in Redis). Known differences, all minor: a command refused for its syntax
//! after Redis would have looked its key up (or before: we count it) counts the lookup; SORT's
//! BY/GET pattern keys are not counted; `OBJECT` counts without a `keymiss` event, as Redis
//! does (it looks up with `LOOKUP_NONOTIFY`).

use super::{CommandFlags, CommandSpec};
use crate::engine::{Engine, EventClass};
use bytes::Bytes;

/// Which of a command's arguments it reads, decided once per command (see [`kinds`]).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Reads {
    Nothing,
    /// Positions `first..=last` (negative: from the end) by `step`: read-only commands.
    Fixed {
        first: i32,
        last: i32,
        step: i32,
    },
    /// The key at argument 1 (GETDEL, COPY's source, SORT…).
    First,
    /// SET's key, when GET is among its options.
    SetGet,
    /// `numkeys` at argument `at`, the keys after it (ZUNION…, ZUNIONSTORE…).
    Counted {
        at: usize,
    },
    /// Every argument from `from` on (SINTERSTORE's sources, BITOP's).
    From {
        from: usize,
    },
    /// ZRANGESTORE's source.
    Second,
    /// OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key, without `keymiss` events.
    Object,
    /// XINFO STREAM|GROUPS|CONSUMERS key.
    Xinfo,
    /// The streams after STREAMS.
    Streams,
}

fn reads_of(spec: &CommandSpec) -> Reads {
    match spec.name {
        // Ours: a monitoring read that must not move the hit ratio it sits beside.
        "qstats" => Reads::Nothing,
        "object" => Reads::Object,
        "xinfo" => Reads::Xinfo,
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" => Reads::Counted { at: 1 },
        "zunionstore" | "zinterstore" | "zdiffstore" => Reads::Counted { at: 2 },
        "sinterstore" | "sunionstore" | "sdiffstore" => Reads::From { from: 2 },
        "bitop" => Reads::From { from: 3 },
        "zrangestore" => Reads::Second,
        "copy" | "getdel" | "getex" | "getset" | "sort" | "sort_ro" | "xack" | "xclaim" | "xautoclaim" => {
            Reads::First
        }
        "set" => Reads::SetGet,
        "xread" | "xreadgroup" => Reads::Streams,
        _ if spec.flags.contains(CommandFlags::READONLY)
            && !spec.flags.contains(CommandFlags::MOVABLE_KEYS)
            && spec.first_key > 0 =>
        {
            Reads::Fixed {
                first: spec.first_key,
                last: spec.last_key,
                step: spec.step.max(1),
            }
        }
        _ => Reads::Nothing,
    }
}

/// [`Reads`] of every command, by its number in the command table.
fn kinds() -> &'static [Reads] {
    static KINDS: std::sync::OnceLock<Vec<Reads>> = std::sync::OnceLock::new();
    KINDS.get_or_init(|| super::COMMANDS.iter().map(reads_of).collect())
}

/// Calls `f(key, notify)` for each key command number `index` reads from `args`, in order;
/// `notify` is false where Redis publishes no `keymiss` event for it.
fn read_keys(index: usize, args: &[Bytes], mut f: impl FnMut(&Bytes, bool)) {
    let sub = |i: usize| args.get(i).map(|a| a.to_ascii_lowercase()).unwrap_or_default();
    let count_at = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let range = |from: usize, n: usize| from.min(args.len())..(from.saturating_add(n)).min(args.len());
    match kinds().get(index).copied().unwrap_or(Reads::Nothing) {
        Reads::Nothing => {}
        Reads::Fixed { first, last, step } => {
            let last = if last < 0 { args.len() as i32 + last } else { last };
            let mut i = first;
            while i <= last {
                if let Some(k) = args.get(i as usize) {
                    f(k, true);
                }
                i += step;
            }
        }
        Reads::First => args[range(1, 1)].iter().for_each(|k| f(k, true)),
        Reads::Second => args[range(2, 1)].iter().for_each(|k| f(k, true)),
        Reads::SetGet => {
            if args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get")) {
                f(&args[1], true);
            }
        }
        // More keys than arguments is refused before any lookup.
        Reads::Counted { at } => {
            let n = count_at(at);
            // `n` is the client's number: compared without overflow.
            if n <= args.len().saturating_sub(at + 1) {
                args[at + 1..at + 1 + n].iter().for_each(|k| f(k, true));
            }
        }
        Reads::From { from } => args[range(from, args.len())].iter().for_each(|k| f(k, true)),
        Reads::Object => {
            if matches!(
                sub(1).as_slice(),
                b"encoding" | b"refcount" | b"idletime" | b"freq"
            ) {
                args[range(2, 1)].iter().for_each(|k| f(k, false));
            }
        }
        Reads::Xinfo => {
            if matches!(sub(1).as_slice(), b"stream" | b"groups" | b"consumers") {
                args[range(2, 1)].iter().for_each(|k| f(k, true));
            }
        }
        // The first of the two lookups of each stream (see [`count_after`]).
        Reads::Streams => xread_keys(args).iter().for_each(|k| f(k, true)),
    }
}

/// The streams of an XREAD/XREADGROUP: the first half of what follows STREAMS, found by
/// stepping over the options (a group or consumer may be called "streams"); none when the
/// keys and ids do not pair up (refused before any lookup).
fn xread_keys(args: &[Bytes]) -> &[Bytes] {
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"streams") {
            let rest = args.len() - i - 1;
            if rest == 0 || !rest.is_multiple_of(2) {
                return &[];
            }
            return &args[i + 1..i + 1 + rest / 2];
        }
        i += if a.eq_ignore_ascii_case(b"group") {
            3
        } else if a.eq_ignore_ascii_case(b"count") || a.eq_ignore_ascii_case(b"block") {
            2
        } else {
            1
        };
    }
    &[]
}

/// One read lookup of `key`: expired first if due, then a hit or a miss.
fn look(engine: &mut Engine, db: usize, key: &Bytes, notify: bool, now_ms: u64) {
    engine.expire_if_due(db, key, now_ms);
    if engine.keyspace[db].map.contains_key(key) {
        engine.stats.keyspace_hits += 1;
    } else {
        engine.stats.keyspace_misses += 1;
        if notify {
            engine.notify(EventClass::KeyMiss, "keymiss", db, key);
        }
    }
}

/// Counts the read lookups of one call of command number `index` (see the module's
/// documentation).
pub fn count(engine: &mut Engine, db: usize, index: usize, args: &[Bytes], now_ms: u64) {
    read_keys(index, args, |key, notify| look(engine, db, key, notify, now_ms));
}

/// The lookups Redis makes after the command has checked its arguments: XREAD and XREADGROUP
/// look every stream up a second time to read it, unless the call was refused.
pub fn count_after(engine: &mut Engine, db: usize, index: usize, args: &[Bytes], refused: bool, now_ms: u64) {
    if refused || kinds().get(index) != Some(&Reads::Streams) {
        return;
    }
    for key in xread_keys(args) {
        look(engine, db, key, true, now_ms);
    }
}
