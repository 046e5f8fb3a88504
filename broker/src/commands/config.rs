//! CONFIG GET, SET, RESETSTAT and REWRITE over the broker's configuration.
//!
//! Every Redis 7.0 parameter is known (`config_params.rs`) and its values are checked as Redis
//! checks them. The ones that mean something here are applied to the running broker and read
//! back from it; the rest are stored and echoed. A SET of several parameters is all or
//! nothing: names are checked first, then every value, and if applying one fails the ones
//! already applied get their old values back.

use super::config_params::{self, Access, Param};
use super::{glob_match, Ctx, Outcome};
use crate::reply::{msg, Reply};
use std::sync::atomic::Ordering::Relaxed;

pub fn config(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if ctx.args.len() >= 3 => config_get(ctx).into(),
        b"set" if ctx.args.len() >= 4 => match config_set(ctx) {
            Ok(()) => Reply::Ok.into(),
            Err(e) => e.into(),
        },
        b"resetstat" if ctx.args.len() == 2 => {
            ctx.engine.stats.reset();
            ctx.shared.stats.errors.lock().clear();
            ctx.shared.stats.total_error_replies.store(0, Relaxed);
            for counter in [
                &ctx.shared.stats.net_input_bytes,
                &ctx.shared.stats.net_output_bytes,
                &ctx.shared.stats.reads_processed,
                &ctx.shared.stats.writes_processed,
            ] {
                counter.store(0, Relaxed);
            }
            // The rates start over from the zeroed counters, as Redis's do.
            ctx.shared.stats.instantaneous.lock().restart(ctx.now_ms.max(1));
            Reply::Ok.into()
        }
        b"rewrite" if ctx.args.len() == 2 => Reply::error(msg::NO_CONFIG_FILE).into(),
        b"get" | b"set" | b"resetstat" | b"rewrite" => Reply::error(msg::wrong_args(&format!(
            "config|{}",
            String::from_utf8_lossy(&sub)
        )))
        .into(),
        _ => Reply::error(msg::unknown_subcommand("config", &ctx.args[1])).into(),
    }
}

/// Whether a CONFIG GET argument is a pattern (otherwise it names one parameter, and the reply
/// repeats it as given).
fn is_pattern(arg: &[u8]) -> bool {
    arg.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

fn config_get(ctx: &Ctx) -> Reply {
    let mut seen: Vec<&'static str> = Vec::new();
    let mut pairs = Vec::new();
    for arg in &ctx.args[2..] {
        if !is_pattern(arg) {
            let name = String::from_utf8_lossy(arg);
            if let Some(param) = config_params::lookup(&name) {
                if !seen.contains(&param.name) {
                    seen.push(param.name);
                    pairs.push((Reply::bulk(arg.clone()), Reply::bulk(value_of(ctx, param))));
                }
            }
            continue;
        }
        for param in config_params::PARAMS {
            if glob_match(arg, param.name.as_bytes(), true) && !seen.contains(&param.name) {
                seen.push(param.name);
                pairs.push((Reply::bulk(param.name), Reply::bulk(value_of(ctx, param))));
            }
        }
    }
    Reply::Map(pairs)
}

/// What CONFIG GET shows for `param`: the running value for those we apply, else the stored
/// one (or the default).
fn value_of(ctx: &Ctx, param: &Param) -> String {
    live(ctx, param.canonical).unwrap_or_else(|| {
        ctx.shared
            .config
            .read()
            .stored_params
            .get(param.canonical)
            .cloned()
            .unwrap_or_else(|| param.default.to_string())
    })
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The running value of a parameter the broker applies; `None` for stored-only ones.
fn live(ctx: &Ctx, canonical: &str) -> Option<String> {
    let c = ctx.shared.config.read();
    Some(match canonical {
        "appendonly" => yes_no(ctx.shared.aof.read().is_some()),
        "appendfsync" => c.aof.fsync.name().into(),
        "appendfilename" => c.aof.filename.clone(),
        "dir" => std::fs::canonicalize(&c.aof.dir)
            .unwrap_or_else(|_| c.aof.dir.clone())
            .display()
            .to_string(),
        "auto-aof-rewrite-percentage" => c.aof.auto_rewrite_percentage.to_string(),
        "auto-aof-rewrite-min-size" => c.aof.auto_rewrite_min_size_bytes.to_string(),
        "aof-load-truncated" => "yes".into(),
        "save" => String::new(),
        "maxmemory" => ctx.shared.memory.limit_bytes.load(Relaxed).to_string(),
        "maxmemory-policy" => "noeviction".into(),
        "databases" => c.databases.to_string(),
        "port" => ctx.shared.port.load(Relaxed).to_string(),
        "bind" => ctx.client.info.laddr.ip().to_string(),
        "requirepass" => c.requirepass.clone().unwrap_or_default(),
        "proto-max-bulk-len" => c.proto_max_bulk_len.to_string(),
        "client-query-buffer-limit" => c.client_query_buffer_limit.to_string(),
        "maxclients" => c.maxclients.to_string(),
        "protected-mode" => yes_no(c.protected_mode),
        "timeout" => c.timeout_s.to_string(),
        "hz" => c.hz.to_string(),
        "busy-reply-threshold" => c.busy_reply_threshold_ms.to_string(),
        "notify-keyspace-events" => crate::pubsub::events::to_text(ctx.engine.pubsub.notify_flags),
        "queue-delayed-sets" => ctx.shared.queues.delayed_patterns(),
        "slowlog-log-slower-than" => ctx.engine.slowlog.threshold_us.to_string(),
        "slowlog-max-len" => ctx.engine.slowlog.max_len.to_string(),
        "latency-monitor-threshold" => ctx.engine.latency.threshold_ms.to_string(),
        _ => return None,
    })
}

fn config_set(ctx: &mut Ctx) -> Result<(), Reply> {
    if !ctx.args.len().is_multiple_of(2) {
        return Err(Reply::error(msg::SYNTAX));
    }
    let failed = |name: &[u8], reason: &str| {
        Reply::error(msg::config_set_failed(&String::from_utf8_lossy(name), reason))
    };
    // Names first: unknown, unchangeable or repeated parameters refuse the whole command.
    let mut params: Vec<&'static Param> = Vec::new();
    for pair in ctx.args[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]);
        let Some(param) = config_params::lookup(&name) else {
            return Err(Reply::error(msg::config_set_unknown(&name)));
        };
        match param.access {
            Access::Immutable => return Err(failed(&pair[0], msg::CONFIG_IMMUTABLE)),
            Access::Protected => return Err(failed(&pair[0], msg::CONFIG_PROTECTED)),
            Access::Mutable => {}
        }
        // As in Redis, an alias and its parameter are two names: only a name given twice is.
        if params.iter().any(|p| p.name == param.name) {
            return Err(failed(&pair[0], msg::CONFIG_DUPLICATE));
        }
        params.push(param);
    }
    // Then every value, before anything changes.
    let mut values = Vec::with_capacity(params.len());
    for (param, pair) in params.iter().zip(ctx.args[2..].chunks(2)) {
        let given = String::from_utf8_lossy(&pair[1]);
        let current = value_of(ctx, param);
        let value =
            config_params::check(param.kind, &given, &current).map_err(|reason| failed(&pair[0], &reason))?;
        values.push((current, value));
    }
    // Then apply them in order; a failure restores those already applied.
    for (i, (param, (_, value))) in params.iter().zip(&values).enumerate() {
        if let Err(reason) = apply(ctx, param.canonical, value) {
            for (earlier, (old, _)) in params[..i].iter().zip(&values).rev() {
                if let Err(e) = apply(ctx, earlier.canonical, old) {
                    tracing::warn!(param = earlier.name, error = ?e, "could not restore a parameter");
                }
            }
            return Err(match reason {
                Refusal::Reason(r) => failed(&ctx.args[2 + 2 * i], &r),
                Refusal::Reply(r) => r,
            });
        }
    }
    Ok(())
}

/// Why applying a checked value failed.
#[derive(Debug)]
enum Refusal {
    /// Worded as CONFIG SET's "failed … - reason".
    Reason(String),
    /// A reply of its own.
    Reply(Reply),
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Refusal {
        Refusal::Reason(reason.to_string())
    }
}

/// Applies a checked value (as `config_params::check` wrote it) to the running broker, or
/// stores it if nothing here depends on it.
fn apply(ctx: &mut Ctx, canonical: &'static str, value: &str) -> Result<(), Refusal> {
    let number = || value.parse::<u64>().unwrap_or(0);
    match canonical {
        "appendonly" if value == "yes" => {
            ctx.shared.config.write().aof.enabled = true;
            super::persistence::enable(ctx.shared, ctx.engine, ctx.now_ms)
                .map_err(|e| Refusal::Reply(Reply::error(msg::aof_enable_failed(&e))))?;
        }
        "appendonly" => {
            ctx.shared.config.write().aof.enabled = false;
            super::persistence::disable(ctx.shared, ctx.engine);
        }
        "appendfsync" => {
            let fsync = value
                .parse::<crate::aof::Fsync>()
                .map_err(|_| Refusal::from(msg::CONFIG_APPENDFSYNC_VALUES))?;
            ctx.shared.config.write().aof.fsync = fsync;
            if let Some(log) = ctx.shared.aof.read().as_ref() {
                log.set_fsync(fsync);
            }
        }
        "auto-aof-rewrite-percentage" => ctx.shared.config.write().aof.auto_rewrite_percentage = number(),
        "auto-aof-rewrite-min-size" => ctx.shared.config.write().aof.auto_rewrite_min_size_bytes = number(),
        "maxmemory" => {
            ctx.shared.config.write().maxmemory_bytes = number();
            ctx.shared.memory.limit_bytes.store(number(), Relaxed);
        }
        "maxmemory-policy" if value == "noeviction" => {}
        "maxmemory-policy" => return Err(msg::CONFIG_ONLY_NOEVICTION.into()),
        // Only the answers that hold here: no RDB save points, truncated tails loaded.
        "save" if value.is_empty() => {}
        "save" => return Err(msg::CONFIG_NO_SAVE_POINTS.into()),
        "aof-load-truncated" if value == "yes" => {}
        "aof-load-truncated" => return Err(msg::CONFIG_LOAD_TRUNCATED_ONLY_YES.into()),
        // The listener is the embedding program's: it cannot move while we run.
        "port" | "bind" => return Err(msg::CONFIG_IMMUTABLE.into()),
        "requirepass" => {
            ctx.shared.config.write().requirepass = (!value.is_empty()).then(|| value.to_string())
        }
        "proto-max-bulk-len" => ctx.shared.config.write().proto_max_bulk_len = number() as usize,
        "client-query-buffer-limit" => {
            ctx.shared.config.write().client_query_buffer_limit = number() as usize
        }
        "maxclients" => {
            let n = number() as usize;
            if let Some(limit) = crate::state::open_file_limit() {
                let most = crate::state::fd_limited_maxclients(usize::MAX, limit);
                if n > most {
                    return Err(Refusal::Reason(msg::config_maxclients_os(most)));
                }
            }
            ctx.shared.config.write().maxclients = n;
        }
        "protected-mode" => ctx.shared.config.write().protected_mode = value == "yes",
        "timeout" => ctx.shared.config.write().timeout_s = number(),
        // As Redis: stored within 1..=500 (CONFIG GET shows the clamped value).
        "hz" => ctx.shared.config.write().hz = number().clamp(1, 500) as u32,
        "busy-reply-threshold" => ctx.shared.config.write().busy_reply_threshold_ms = number(),
        "notify-keyspace-events" => {
            ctx.engine.pubsub.notify_flags = crate::pubsub::events::parse(value.as_bytes())
                .ok_or_else(|| Refusal::from(msg::CONFIG_EVENT_CLASS))?;
        }
        "slowlog-log-slower-than" => ctx.engine.slowlog.threshold_us = value.parse().unwrap_or(10_000),
        // As in Redis, a shorter log drops its oldest entries at the next entry, not now.
        "slowlog-max-len" => ctx.engine.slowlog.max_len = usize::try_from(number()).unwrap_or(usize::MAX),
        "latency-monitor-threshold" => ctx.engine.latency.threshold_ms = number(),
        "queue-delayed-sets" => ctx
            .shared
            .queues
            .set_delayed_patterns(value)
            .map_err(Refusal::Reason)?,
        _ => {
            ctx.shared
                .config
                .write()
                .stored_params
                .insert(canonical, value.to_string());
        }
    }
    Ok(())
}

/// A memory amount as Redis reads one: bytes, or a number with `k`/`m`/`g` (powers of 1000)
/// or `kb`/`mb`/`gb` (powers of 1024), case-insensitive.
pub fn parse_memory(value: &str) -> Option<u64> {
    let lower = value.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn memory_values_read_as_redis_reads_them() {
        assert_eq!(parse_memory("0"), Some(0));
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("50mb"), Some(50 * 1024 * 1024));
        assert_eq!(parse_memory("50MB"), Some(50 * 1024 * 1024));
        assert_eq!(parse_memory("2k"), Some(2000));
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        for bad in ["", "mb", "50xb", "-1", "1.5mb", "ten"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }
}
