//! CONFIG GET, SET, RESETSTAT and REWRITE over the broker's configuration.

use super::{glob_match, Ctx, Outcome};
use crate::reply::{msg, Reply};
use std::sync::atomic::Ordering::Relaxed;

/// `(name, value, mutable)` for CONFIG GET.
fn config_params(ctx: &Ctx) -> Vec<(&'static str, String, bool)> {
    let c = ctx.shared.config.read();
    vec![
        ("save", String::new(), true),
        (
            "appendonly",
            if ctx.shared.aof.read().is_some() {
                "yes"
            } else {
                "no"
            }
            .into(),
            true,
        ),
        ("appendfsync", c.aof.fsync.name().into(), true),
        ("appendfilename", c.aof.filename.clone(), false),
        (
            "dir",
            std::fs::canonicalize(&c.aof.dir)
                .unwrap_or_else(|_| c.aof.dir.clone())
                .display()
                .to_string(),
            false,
        ),
        (
            "auto-aof-rewrite-percentage",
            c.aof.auto_rewrite_percentage.to_string(),
            true,
        ),
        (
            "auto-aof-rewrite-min-size",
            c.aof.auto_rewrite_min_size_bytes.to_string(),
            true,
        ),
        ("aof-load-truncated", "yes".into(), true),
        (
            "maxmemory",
            ctx.shared.memory.limit_bytes.load(Relaxed).to_string(),
            true,
        ),
        ("maxmemory-policy", "noeviction".into(), true),
        ("databases", c.databases.to_string(), false),
        ("port", ctx.shared.port.load(Relaxed).to_string(), false),
        ("requirepass", c.requirepass.clone().unwrap_or_default(), true),
        ("proto-max-bulk-len", c.proto_max_bulk_len.to_string(), true),
        (
            "client-query-buffer-limit",
            c.client_query_buffer_limit.to_string(),
            true,
        ),
        ("maxclients", c.maxclients.to_string(), true),
        (
            "protected-mode",
            if c.protected_mode { "yes" } else { "no" }.into(),
            true,
        ),
        ("timeout", c.timeout_s.to_string(), true),
        ("hz", c.hz.to_string(), true),
        (
            "busy-reply-threshold",
            c.busy_reply_threshold_ms.to_string(),
            true,
        ),
        ("lua-time-limit", c.busy_reply_threshold_ms.to_string(), true),
        (
            "notify-keyspace-events",
            crate::pubsub::events::to_text(ctx.engine.pubsub.notify_flags),
            true,
        ),
    ]
}

pub fn config(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if ctx.args.len() >= 3 => {
            let params = config_params(ctx);
            let mut pairs = Vec::new();
            for (name, value, _) in &params {
                if ctx.args[2..].iter().any(|p| glob_match(p, name.as_bytes(), true)) {
                    pairs.push((Reply::bulk(name), Reply::bulk(value)));
                }
            }
            Reply::Map(pairs).into()
        }
        b"set" if ctx.args.len() >= 4 && ctx.args.len().is_multiple_of(2) => {
            for pair in ctx.args[2..].chunks(2) {
                let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                let value = String::from_utf8_lossy(&pair[1]).into_owned();
                if let Err(e) = config_set(ctx, &name, &value) {
                    return e.into();
                }
            }
            Reply::Ok.into()
        }
        b"resetstat" if ctx.args.len() == 2 => {
            ctx.engine.stats.reset();
            ctx.shared.stats.errors.lock().clear();
            ctx.shared.stats.total_error_replies.store(0, Relaxed);
            Reply::Ok.into()
        }
        b"rewrite" if ctx.args.len() == 2 => Reply::error(msg::NO_CONFIG_FILE).into(),
        b"get" | b"set" | b"resetstat" | b"rewrite" => {
            Reply::error(msg::subcommand_arity("config", &ctx.args[1])).into()
        }
        _ => Reply::error(msg::unknown_subcommand("config", &ctx.args[1])).into(),
    }
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

/// Parameters about persistence and memory: applied to the running log and the memory gauge.
/// `None` when `name` is not one of them.
fn config_set_persistence(ctx: &mut Ctx, name: &str, value: &str) -> Option<Result<(), Reply>> {
    let bad = |reason: &str| Reply::error(msg::config_set_failed(name, reason));
    let result = match name {
        "appendonly" => match value.to_ascii_lowercase().as_str() {
            "yes" => {
                ctx.shared.config.write().aof.enabled = true;
                super::persistence::enable(ctx.shared, ctx.engine, ctx.now_ms)
                    .map_err(|e| Reply::error(msg::aof_enable_failed(&e)))
            }
            "no" => {
                ctx.shared.config.write().aof.enabled = false;
                super::persistence::disable(ctx.shared, ctx.engine);
                Ok(())
            }
            _ => Err(bad(msg::CONFIG_NOT_YES_NO)),
        },
        "appendfsync" => match value.parse::<crate::aof::Fsync>() {
            Ok(f) => {
                ctx.shared.config.write().aof.fsync = f;
                if let Some(log) = ctx.shared.aof.read().as_ref() {
                    log.set_fsync(f);
                }
                Ok(())
            }
            Err(_) => Err(bad(msg::CONFIG_APPENDFSYNC_VALUES)),
        },
        "auto-aof-rewrite-percentage" => match value.parse::<u64>() {
            Ok(n) => {
                ctx.shared.config.write().aof.auto_rewrite_percentage = n;
                Ok(())
            }
            Err(_) => Err(bad(msg::CONFIG_NOT_INTEGER)),
        },
        "auto-aof-rewrite-min-size" => match parse_memory(value) {
            Some(n) => {
                ctx.shared.config.write().aof.auto_rewrite_min_size_bytes = n;
                Ok(())
            }
            None => Err(bad(msg::CONFIG_NOT_MEMORY)),
        },
        "maxmemory" => match parse_memory(value) {
            Some(n) => {
                ctx.shared.config.write().maxmemory_bytes = n;
                ctx.shared.memory.limit_bytes.store(n, Relaxed);
                Ok(())
            }
            None => Err(bad(msg::CONFIG_NOT_MEMORY)),
        },
        "maxmemory-policy" => match value.to_ascii_lowercase().as_str() {
            "noeviction" => Ok(()),
            "volatile-lru" | "volatile-lfu" | "volatile-random" | "volatile-ttl" | "allkeys-lru"
            | "allkeys-lfu" | "allkeys-random" => Err(bad(msg::CONFIG_ONLY_NOEVICTION)),
            _ => Err(bad(msg::CONFIG_MAXMEMORY_POLICY_VALUES)),
        },
        // Only the answer that holds here: no RDB save points, truncated tails loaded.
        "save" if value.trim().is_empty() => Ok(()),
        "save" => Err(bad(msg::CONFIG_NO_SAVE_POINTS)),
        "aof-load-truncated" if value.eq_ignore_ascii_case("yes") => Ok(()),
        "aof-load-truncated" => Err(bad(msg::CONFIG_LOAD_TRUNCATED_ONLY_YES)),
        "dir" | "appendfilename" => Err(bad(msg::CONFIG_IMMUTABLE)),
        _ => return None,
    };
    Some(result)
}

fn config_set(ctx: &mut Ctx, name: &str, value: &str) -> Result<(), Reply> {
    if name == "notify-keyspace-events" {
        let flags = crate::pubsub::events::parse(value.as_bytes())
            .ok_or_else(|| Reply::error(msg::config_set_failed(name, msg::CONFIG_EVENT_CLASS)))?;
        ctx.engine.pubsub.notify_flags = flags;
        return Ok(());
    }
    if let Some(result) = config_set_persistence(ctx, name, value) {
        return result;
    }
    let bad = |reason: &str| Reply::error(msg::config_set_failed(name, reason));
    let num = || value.parse::<u64>().map_err(|_| bad(msg::CONFIG_NOT_INTEGER));
    let mut c = ctx.shared.config.write();
    match name {
        "requirepass" => c.requirepass = (!value.is_empty()).then(|| value.to_string()),
        "proto-max-bulk-len" => c.proto_max_bulk_len = num()? as usize,
        "client-query-buffer-limit" => c.client_query_buffer_limit = num()? as usize,
        "maxclients" => {
            let n = num()?;
            if n == 0 || n > u64::from(u32::MAX) {
                return Err(bad(msg::CONFIG_MAXCLIENTS_RANGE));
            }
            if let Some(limit) = crate::state::open_file_limit() {
                let most = crate::state::fd_limited_maxclients(usize::MAX, limit);
                if n as usize > most {
                    return Err(bad(&msg::config_maxclients_os(most)));
                }
            }
            c.maxclients = n as usize;
        }
        "protected-mode" => {
            c.protected_mode = match value.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(bad(msg::CONFIG_NOT_YES_NO)),
            }
        }
        "timeout" => c.timeout_s = num()?,
        "hz" => c.hz = (num()? as u32).clamp(1, 500),
        "busy-reply-threshold" | "lua-time-limit" => c.busy_reply_threshold_ms = num()?,
        "databases" | "port" | "bind" => return Err(bad(msg::CONFIG_IMMUTABLE)),
        _ => return Err(Reply::error(msg::config_set_unknown(name))),
    }
    Ok(())
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
