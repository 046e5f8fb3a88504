//! MOVE and SWAPDB: keys and whole databases changing database number.

use super::{parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Reply};

/// A database number as Redis reads one (a 32-bit integer), `Err(reply)` otherwise.
fn db_number(arg: &[u8], not_int: &'static str) -> Result<i64, Reply> {
    let n = parse_i64(arg).ok_or_else(|| Reply::error(not_int))?;
    if i32::try_from(n).is_err() {
        return Err(Reply::error(if not_int == msg::NOT_INT {
            msg::INT32_RANGE
        } else {
            not_int
        }));
    }
    Ok(n)
}

/// MOVE key db: 1 if the key moved (with its time to live), 0 if it does not exist here or
/// already exists there.
pub fn move_(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let src = ctx.client.db;
    let dst = match db_number(&ctx.args[2], msg::NOT_INT) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    if dst < 0 || dst as usize >= ctx.engine.keyspace.len() {
        return Reply::error(msg::DB_INDEX).into();
    }
    let dst = dst as usize;
    if dst == src {
        return Reply::error(msg::SAME_OBJECT).into();
    }
    let now = ctx.now_ms;
    ctx.engine.expire_if_due(src, &key, now);
    if !ctx.engine.keyspace[src].map.contains_key(&key) {
        return Reply::Int(0).into();
    }
    ctx.engine.expire_if_due(dst, &key, now);
    if ctx.engine.keyspace[dst].map.contains_key(&key) {
        return Reply::Int(0).into();
    }
    let expiry = ctx.engine.keyspace[src].expiry_of(&key);
    let Some(value) = ctx.engine.keyspace[src].remove(&key) else {
        return Reply::Int(0).into();
    };
    let list_len = match value {
        // The list is a queue of another database now: it takes that key's counters.
        Value::List(mut l) => {
            l.retarget(ctx.engine.keyspace.queues.counters(dst, &key));
            let len = l.len();
            l.stats.record_push(0, len, l.oldest_us(), now);
            ctx.engine.keyspace[dst].map.insert(key.clone(), Value::List(l));
            Some(len)
        }
        v => {
            ctx.engine.keyspace[dst].map.insert(key.clone(), v);
            None
        }
    };
    if let Some(at) = expiry {
        ctx.engine.keyspace[dst].set_expiry(&key, at);
    }
    ctx.engine.touch(src, &key);
    match list_len {
        // Arriving in the other database serves clients blocked on the key there.
        Some(len) => ctx.engine.after_push(dst, &key, 0, len),
        None => {
            ctx.engine.touch(dst, &key);
            ctx.engine.signal_key_ready(dst, &key);
        }
    }
    ctx.engine.notify(EventClass::Generic, "move_from", src, &key);
    ctx.engine.notify(EventClass::Generic, "move_to", dst, &key);
    Reply::Int(1).into()
}

/// SWAPDB index1 index2: exchanges two databases' data; connections keep their database.
pub fn swapdb(ctx: &mut Ctx) -> Outcome {
    let a = match db_number(&ctx.args[1], msg::SWAPDB_FIRST_INDEX) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    let b = match db_number(&ctx.args[2], msg::SWAPDB_SECOND_INDEX) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    let dbs = ctx.engine.keyspace.len() as i64;
    if !(0..dbs).contains(&a) || !(0..dbs).contains(&b) {
        return Reply::error(msg::DB_INDEX).into();
    }
    let now = ctx.now_ms;
    ctx.engine.swap_databases(a as usize, b as usize, now);
    Reply::Ok.into()
}
