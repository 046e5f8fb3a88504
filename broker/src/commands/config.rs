//! CONFIG GET, SET, RESETSTAT and REWRITE over the broker's configuration.

use super::{glob_match, Ctx, Outcome};
use crate::reply::{msg, Reply};
use std::sync::atomic::Ordering::Relaxed;

/// `(name, value, mutable)` for CONFIG GET.
fn config_params(ctx: &Ctx) -> Vec<(&'static str, String, bool)> {
    let c = ctx.shared.config.read();
    vec![
        ("save", String::new(), true),
        ("appendonly", "no".into(), true),
        ("appendfsync", "everysec".into(), true),
        ("maxmemory", "0".into(), true),
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

fn config_set(ctx: &Ctx, name: &str, value: &str) -> Result<(), Reply> {
    let bad = |reason: &str| Reply::error(msg::config_set_failed(name, reason));
    let num = || value.parse::<u64>().map_err(|_| bad(msg::CONFIG_NOT_INTEGER));
    let mut c = ctx.shared.config.write();
    match name {
        "save" | "appendonly" | "appendfsync" | "maxmemory" | "maxmemory-policy" => {}
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
