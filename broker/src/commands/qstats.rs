//! QSTATS: per-queue metrics over the protocol (our extension).

use super::{Ctx, Outcome};
use crate::reply::Reply;
use bytes::Bytes;

/// `QSTATS [RESET] [key ...]`: per-queue metrics as a map of maps (flat arrays in RESP2).
pub fn qstats(ctx: &mut Ctx) -> Outcome {
    let mut keys = &ctx.args[1..];
    let db = ctx.client.db;
    if keys.first().is_some_and(|k| k.eq_ignore_ascii_case(b"reset")) {
        keys = &keys[1..];
        let targets: Vec<Bytes> = if keys.is_empty() {
            ctx.shared
                .queues
                .snapshot()
                .into_iter()
                .filter(|q| q.db == db)
                .map(|q| q.name)
                .collect()
        } else {
            keys.to_vec()
        };
        ctx.shared.queues.reset(db, &targets);
        return Reply::Ok.into();
    }
    let stats: Vec<crate::metrics::QueueStats> = if keys.is_empty() {
        ctx.shared
            .queues
            .listed(crate::metrics::MAX_LISTED_QUEUES)
            .0
            .into_iter()
            .filter(|q| q.db == db)
            .collect()
    } else {
        keys.iter()
            .filter_map(|k| ctx.shared.queues.queue(db, k))
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
                (Reply::Bulk(q.name.clone()), Reply::Map(fields))
            })
            .collect(),
    )
    .into()
}
