//! QSTATS: per-queue metrics over the protocol (our extension).

use super::{Ctx, Outcome};
use crate::reply::Reply;

/// `QSTATS [RESET] [key ...]`: per-queue metrics as a map of maps (flat arrays in RESP2),
/// one entry per list, per consumer group of a stream (named `key@group`) and per delayed
/// set.
pub fn qstats(ctx: &mut Ctx) -> Outcome {
    let mut keys = &ctx.args[1..];
    let db = ctx.client.db;
    if keys.first().is_some_and(|k| k.eq_ignore_ascii_case(b"reset")) {
        keys = &keys[1..];
        if keys.is_empty() {
            ctx.shared.queues.reset_db(db);
        } else {
            ctx.shared.queues.reset(db, keys);
        }
        return Reply::Ok.into();
    }
    let registry = &ctx.shared.queues;
    let keyspace = &ctx.engine.keyspace;
    let stats: Vec<crate::metrics::QueueStats> = if keys.is_empty() {
        crate::queue_view::listed(registry, keyspace, crate::metrics::MAX_LISTED_QUEUES)
            .0
            .into_iter()
            .filter(|q| q.db == db)
            .collect()
    } else {
        keys.iter()
            .flat_map(|k| crate::queue_view::of_key(registry, keyspace, db, k))
            .collect()
    };
    Reply::Map(
        stats
            .into_iter()
            .map(|q| {
                let fields = q
                    .fields()
                    .into_iter()
                    .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                    .collect();
                (Reply::Bulk(q.label()), Reply::Map(fields))
            })
            .collect(),
    )
    .into()
}
