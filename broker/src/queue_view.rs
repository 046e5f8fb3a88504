//! Every queue shape, read together: list counters kept on the command path, and streams'
//! consumer groups and delayed-job sorted sets, whose figures (lag, pending entries, due and
//! scheduled jobs) are read from the value itself when listed.
//!
//! Reading the value instead of counting on every command keeps XADD, XREADGROUP and ZADD
//! free of bookkeeping and the figures exact whatever changed the value (XDEL, XTRIM,
//! XSETID, XGROUP SETID, ZREM, RESTORE, a replayed log). Only what the value cannot tell is
//! counted: acknowledgements and how long each entry waited from its id to its XACK.
//! Listing costs one lookup per watched key and O(groups + log n) per stream, under the
//! keyspace lock.

use crate::db::{Keyspace, Value};
use crate::metrics::{
    finish_listing, unix_ms, Candidate, QueueKind, QueueRegistry, QueueStats, ScoreUnit, Watch, WatchShape,
};
use crate::types::stream::{Group, Stream, StreamId};
use crate::types::zset::{ScoreBound, ScoreRange, ZSet};
use bytes::Bytes;

/// Every queue — lists, stream groups, delayed sets — as INFO, QSTATS and `/metrics` list
/// them: pinned first, then the most recently active, at most `limit`, sorted by database,
/// name and group; and how many were left out. Stops watching keys that lost their shape.
pub fn listed(registry: &QueueRegistry, keyspace: &Keyspace, limit: usize) -> (Vec<QueueStats>, usize) {
    let now_ms = unix_ms();
    let watched = registry.watched();
    let watched_keys: std::collections::HashSet<&(usize, Bytes)> = watched.iter().map(|(k, _)| k).collect();
    // A client blocked on a stream or sorted set gets list counters; the shape lists it.
    let mut candidates = registry.list_candidates(&|k| watched_keys.contains(k));
    let mut gone = Vec::new();
    let mut live_groups = Vec::new();
    for ((db, key), watch) in &watched {
        let found = shape_stats(registry, keyspace, *db, key, watch, now_ms);
        if found.is_empty() {
            gone.push((*db, key.clone()));
        }
        for stats in found {
            if let Some(g) = &stats.group {
                live_groups.push((*db, key.clone(), g.clone()));
            }
            let active_ms = stats.last_push_ms.max(stats.last_pop_ms).max(watch.since_ms);
            candidates.push(Candidate {
                pinned: watch.pinned,
                active_ms,
                stats,
            });
        }
    }
    registry.unwatch(&gone, &live_groups);
    finish_listing(candidates, limit)
}

/// The queues `key` holds — a list, one entry per consumer group of a stream (watched or
/// not), a delayed set (watched, or named as a delayed-set pattern says) — for `QSTATS key`.
pub fn of_key(registry: &QueueRegistry, keyspace: &Keyspace, db: usize, key: &Bytes) -> Vec<QueueStats> {
    let now_ms = unix_ms();
    let watch = registry.watch_of(db, key);
    match (keyspace.live(db, key, now_ms), watch) {
        (_, Some(w)) => {
            let found = shape_stats(registry, keyspace, db, key, &w, now_ms);
            if found.is_empty() {
                registry.queue(db, key).into_iter().collect()
            } else {
                found
            }
        }
        (Some(Value::Stream(s)), None) => s
            .groups
            .iter()
            .map(|(name, g)| group_stats(registry, db, key, s, name, Some(g), now_ms))
            .collect(),
        (Some(Value::ZSet(z)), None) => match registry.delayed_unit_of(key) {
            Some(unit) => vec![delayed_stats(registry, db, key, z, unit, now_ms)],
            None => registry.queue(db, key).into_iter().collect(),
        },
        _ => registry.queue(db, key).into_iter().collect(),
    }
}

/// The queues a watched key holds now: empty when it lost its shape (pinned ones are listed
/// with zeros instead).
fn shape_stats(
    registry: &QueueRegistry,
    keyspace: &Keyspace,
    db: usize,
    key: &Bytes,
    watch: &Watch,
    now_ms: u64,
) -> Vec<QueueStats> {
    let value = keyspace.live(db, key, now_ms);
    match (&watch.shape, value) {
        (WatchShape::Stream { groups: pinned }, Some(Value::Stream(s))) => {
            let mut out: Vec<QueueStats> = s
                .groups
                .iter()
                .map(|(name, g)| group_stats(registry, db, key, s, name, Some(g), now_ms))
                .collect();
            for name in pinned.iter().filter(|g| !s.groups.contains_key(*g)) {
                out.push(group_stats(registry, db, key, s, name, None, now_ms));
            }
            out
        }
        (WatchShape::Stream { groups: pinned }, _) if watch.pinned => {
            let empty = Stream::new();
            pinned
                .iter()
                .map(|name| group_stats(registry, db, key, &empty, name, None, now_ms))
                .collect()
        }
        (WatchShape::Delayed(unit), Some(Value::ZSet(z))) => {
            vec![delayed_stats(registry, db, key, z, *unit, now_ms)]
        }
        (WatchShape::Delayed(unit), _) if watch.pinned => {
            vec![delayed_stats(registry, db, key, &ZSet::new(), *unit, now_ms)]
        }
        _ => Vec::new(),
    }
}

/// Consumer group `name` of stream `s` (`None`: declared, not created yet).
fn group_stats(
    registry: &QueueRegistry,
    db: usize,
    key: &Bytes,
    s: &Stream,
    name: &Bytes,
    group: Option<&Group>,
    now_ms: u64,
) -> QueueStats {
    let mut stats = QueueStats {
        name: key.clone(),
        db,
        kind: QueueKind::Stream,
        group: Some(name.clone()),
        pushed_total: s.entries_added,
        blocked_clients: registry.blocked_on(db, key),
        last_push_ms: if s.is_empty() { 0 } else { s.last_id.ms },
        ..QueueStats::default()
    };
    if let Some(acks) = registry.acks_of(db, key, name) {
        let counted = acks.snapshot(key, db);
        stats.acked_total = counted.popped_total;
        stats.wait_count = counted.wait_count;
        stats.wait_mean_ms = counted.wait_mean_ms;
        stats.wait_p50_ms = counted.wait_p50_ms;
        stats.wait_p99_ms = counted.wait_p99_ms;
        stats.last_pop_ms = counted.last_pop_ms;
    }
    let Some(g) = group else {
        return stats;
    };
    // The first entry the group has not been delivered.
    let next = g.last_id.next();
    let undelivered = || next.into_iter().flat_map(|from| s.range(from, StreamId::MAX));
    let lag = match s.lag(g) {
        Some(n) => n.max(0) as u64,
        // Deleted entries past the group's position: count what is there.
        None => undelivered().count() as u64,
    };
    stats.length = lag;
    stats.popped_total = s.entries_added.saturating_sub(lag);
    if lag > 0 {
        if let Some((id, _)) = undelivered().next() {
            stats.oldest_age_ms = now_ms.saturating_sub(id.ms) as f64;
        }
    }
    stats.pending = g.pel.len() as u64;
    if let Some(id) = g.pel.keys().next() {
        stats.oldest_pending_age_ms = now_ms.saturating_sub(id.ms) as f64;
    }
    stats.consumers = g
        .consumers
        .keys()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    stats
}

/// A delayed-job set: members due now (score at or before now) and scheduled later.
fn delayed_stats(
    registry: &QueueRegistry,
    db: usize,
    key: &Bytes,
    z: &ZSet,
    unit: ScoreUnit,
    now_ms: u64,
) -> QueueStats {
    let due_range = ScoreRange {
        min: ScoreBound {
            value: f64::NEG_INFINITY,
            exclusive: false,
        },
        max: ScoreBound {
            value: unit.due_score(now_ms),
            exclusive: false,
        },
    };
    let (_, due) = z.score_span(&due_range);
    let total = z.len();
    let score_at = |rank: usize| z.range(rank, rank + 1).first().map(|(_, score)| *score);
    let mut stats = QueueStats {
        name: key.clone(),
        db,
        kind: QueueKind::Delayed,
        unit: Some(unit),
        length: due as u64,
        scheduled: (total - due) as u64,
        blocked_clients: registry.blocked_on(db, key),
        ..QueueStats::default()
    };
    if due > 0 {
        if let Some(score) = score_at(0) {
            stats.oldest_age_ms = (now_ms as f64 - unit.due_ms(score)).max(0.0);
        }
    }
    if due < total {
        if let Some(score) = score_at(due) {
            stats.next_due_ms = (unit.due_ms(score) - now_ms as f64).max(0.0);
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_units_read_due_times() {
        let now = 1_700_000_000_123u64;
        assert_eq!(ScoreUnit::Seconds.due_ms(1_700_000_000.5), 1_700_000_000_500.0);
        assert!(ScoreUnit::Seconds.due_score(now) >= 1_700_000_000.123 - 1e-6);
        // BullMQ: ms × 4096 plus a counter; every counter value at `now` is due.
        let latest_at_now = (now as f64) * 4096.0 + 4095.0;
        assert!(latest_at_now <= ScoreUnit::BullMq.due_score(now));
        assert!((now as f64 + 1.0) * 4096.0 > ScoreUnit::BullMq.due_score(now));
        assert_eq!(ScoreUnit::BullMq.due_ms(latest_at_now), now as f64);
        assert_eq!(ScoreUnit::Millis.due_ms(5.0), 5.0);
    }
}
