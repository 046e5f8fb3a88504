//! SLOWLOG, LATENCY, ROLE, LASTSAVE and WAIT: what monitoring tools and client libraries ask
//! a server about itself.

use super::{int_arg, CommandSpec, Ctx, Outcome};
use crate::engine::{BlockOp, Engine};
use crate::reply::{msg, Reply};
use crate::state::ClientState;
use bytes::Bytes;
use std::borrow::Cow;

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

fn help(lines: &[&'static str]) -> Outcome {
    Reply::Array(lines.iter().map(|l| Reply::status(*l)).collect()).into()
}

/// Checks a container's subcommand against its arity as Redis's subcommand table does:
/// `Ok(Some(name))` to run it, `Err` with the reply for an unknown one or a wrong count.
fn subcommand(ctx: &Ctx, container: &str, table: &[(&'static str, i32)]) -> Result<&'static str, Outcome> {
    let sub = ctx.args[1].to_ascii_lowercase();
    let Some(&(name, arity)) = table.iter().find(|(n, _)| n.as_bytes() == sub.as_slice()) else {
        return Err(Reply::error(msg::unknown_subcommand(container, &ctx.args[1])).into());
    };
    let argc = ctx.args.len() as i32;
    let fits = if arity >= 0 { argc == arity } else { argc >= -arity };
    if !fits {
        return Err(Reply::error(msg::wrong_args(&format!("{container}|{name}"))).into());
    }
    Ok(name)
}

/// SLOWLOG GET [count] | LEN | RESET | HELP.
pub fn slowlog(ctx: &mut Ctx) -> Outcome {
    let table = [("get", -2), ("len", 2), ("reset", 2), ("help", 2)];
    let sub = match subcommand(ctx, "slowlog", &table) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let log = &mut ctx.engine.slowlog;
    match sub {
        "get" if ctx.args.len() <= 3 => {
            let count = match ctx.args.get(2) {
                None => 10,
                Some(a) => match super::parse_i64(a) {
                    Some(-1) => usize::MAX,
                    Some(n) if n >= 0 => n as usize,
                    _ => return Reply::error(msg::SLOWLOG_COUNT).into(),
                },
            };
            let entries = log
                .newest(count)
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Int(e.id as i64),
                        Reply::Int(e.unix_s as i64),
                        Reply::Int(e.duration_us as i64),
                        Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::bulk(&e.addr),
                        Reply::bulk(&e.name),
                    ])
                })
                .collect();
            Reply::Array(entries).into()
        }
        "len" => Reply::Int(log.len() as i64).into(),
        "reset" => {
            log.reset();
            Reply::Ok.into()
        }
        "help" => help(SLOWLOG_HELP),
        _ => Reply::error(msg::subcommand_arity("slowlog", &ctx.args[1])).into(),
    }
}

/// Adds the command just run to the slow log (the caller checked that it was slow enough):
/// passwords are replaced as Redis redacts them, a script's commands show no client.
pub(super) fn log_slow(
    engine: &mut Engine,
    client: &ClientState,
    spec: &CommandSpec,
    args: &[Bytes],
    usec: u64,
) {
    let (addr, name) = if client.raw_replies {
        (
            client.info.addr.to_string(),
            client.name.clone().unwrap_or_default(),
        )
    } else {
        ("?:0".to_string(), String::new())
    };
    let args = redacted(spec, args);
    let unix_s = engine.now_us / 1_000_000;
    engine.slowlog.push(unix_s, usec, &args, addr, name);
}

/// The arguments with secrets replaced by `(redacted)`, as Redis keeps them out of the slow log:
/// AUTH's, HELLO's AUTH pair, and CONFIG SET of a password.
fn redacted<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> Cow<'a, [Bytes]> {
    let hidden = Bytes::from_static(b"(redacted)");
    let mut out = Cow::Borrowed(args);
    match spec.name {
        "auth" => {
            let v = out.to_mut();
            v[1..].iter_mut().for_each(|a| *a = hidden.clone());
        }
        "hello" => {
            if let Some(i) = args.iter().skip(2).position(|a| a.eq_ignore_ascii_case(b"auth")) {
                let v = out.to_mut();
                v.iter_mut().skip(i + 3).take(2).for_each(|a| *a = hidden.clone());
            }
        }
        "config" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"set")) => {
            let v = out.to_mut();
            for pair in v[2..].chunks_mut(2) {
                let secret = ["requirepass", "masterauth"]
                    .iter()
                    .any(|n| pair[0].eq_ignore_ascii_case(n.as_bytes()));
                if secret && pair.len() == 2 {
                    pair[1] = hidden.clone();
                }
            }
        }
        _ => {}
    }
    out
}

/// LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR | GRAPH event | HISTOGRAM
/// [command ...] | HELP.
pub fn latency(ctx: &mut Ctx) -> Outcome {
    let table = [
        ("latest", 2),
        ("history", 3),
        ("reset", -2),
        ("doctor", 2),
        ("graph", 3),
        ("histogram", -2),
        ("help", 2),
    ];
    let sub = match subcommand(ctx, "latency", &table) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let monitor = &mut ctx.engine.latency;
    match sub {
        "latest" => Reply::Array(
            monitor
                .events
                .iter()
                .filter_map(|(name, series)| {
                    let last = series.samples.back()?;
                    Some(Reply::Array(vec![
                        Reply::bulk(name),
                        Reply::Int(last.unix_s as i64),
                        Reply::Int(last.latency_ms as i64),
                        Reply::Int(series.max_ms as i64),
                    ]))
                })
                .collect(),
        )
        .into(),
        "history" => {
            let name = &ctx.args[2];
            let samples = monitor
                .events
                .iter()
                .find(|(k, _)| k.as_bytes() == &name[..])
                .map(|(_, s)| {
                    s.samples
                        .iter()
                        .map(|x| {
                            Reply::Array(vec![Reply::Int(x.unix_s as i64), Reply::Int(x.latency_ms as i64)])
                        })
                        .collect()
                })
                .unwrap_or_default();
            Reply::Array(samples).into()
        }
        "reset" => Reply::Int(monitor.reset(&ctx.args[2..]) as i64).into(),
        "doctor" if monitor.threshold_ms == 0 => {
            Reply::Verbatim(Bytes::from_static(msg::LATENCY_DOCTOR_DISABLED.as_bytes())).into()
        }
        "doctor" if monitor.events.is_empty() => {
            Reply::Verbatim(Bytes::from_static(msg::LATENCY_DOCTOR_NO_SPIKES.as_bytes())).into()
        }
        // Redis's analysis of recorded spikes (averages, periods, advice per event) is not
        // reproduced; the samples themselves are in LATENCY LATEST and HISTORY.
        "doctor" => Reply::error(msg::LATENCY_DOCTOR_UNSUPPORTED).into(),
        "graph" => {
            let name = &ctx.args[2];
            let has = monitor
                .events
                .iter()
                .any(|(k, s)| k.as_bytes() == &name[..] && !s.samples.is_empty());
            if has {
                // Redis draws recorded samples as ASCII art; that drawing is not reproduced.
                Reply::error(msg::LATENCY_GRAPH_UNSUPPORTED).into()
            } else {
                Reply::error(msg::latency_no_samples(name)).into()
            }
        }
        "histogram" => histogram(ctx),
        "help" => help(LATENCY_HELP),
        _ => Reply::error(msg::subcommand_arity("latency", &ctx.args[1])).into(),
    }
}

/// LATENCY HISTOGRAM [command ...]: each command's calls and the cumulative count of calls
/// per power-of-two latency bucket, as Redis 7.0 reports its per-command histograms.
fn histogram(ctx: &mut Ctx) -> Outcome {
    let wanted: Vec<usize> = if ctx.args.len() == 2 {
        (0..super::COMMANDS.len()).collect()
    } else {
        let mut v = Vec::new();
        for name in &ctx.args[2..] {
            if let Some(i) = super::lookup_index(name) {
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        v
    };
    let mut out = Vec::new();
    for i in wanted {
        let Some(stat) = ctx.engine.stats.per_command.get(i) else {
            continue;
        };
        let calls: u64 = stat.latency_buckets.iter().sum();
        if calls == 0 {
            continue;
        }
        let mut buckets = Vec::new();
        let mut cumulative = 0;
        for (k, n) in stat.latency_buckets.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            cumulative += n;
            buckets.push((
                Reply::Int(bucket_label_us(k) as i64),
                Reply::Int(cumulative as i64),
            ));
        }
        out.push((
            Reply::bulk(super::COMMANDS[i].name),
            Reply::Map(vec![
                (Reply::bulk("calls"), Reply::Int(calls as i64)),
                (Reply::bulk("histogram_usec"), Reply::Map(buckets)),
            ]),
        ));
    }
    Reply::Map(out).into()
}

/// The label Redis prints for latency bucket `k` (durations up to 1024·2^k ns): the highest
/// nanosecond value its histogram (two significant digits) treats as equal to 1024·2^k, in µs.
fn bucket_label_us(k: usize) -> u64 {
    let top = 1024u64 << k;
    (top + (top >> 7) - 1) / 1000
}

/// ROLE: a primary with no replicas at replication offset 0.
pub fn role(_ctx: &mut Ctx) -> Outcome {
    Reply::Array(vec![
        Reply::bulk("master"),
        Reply::Int(0),
        Reply::Array(Vec::new()),
    ])
    .into()
}

/// LASTSAVE: when the data was last saved to an RDB file. There is none here (SAVE and BGSAVE
/// are refused), so, as Redis reports a server that never saved, the server's start — the
/// same `rdb_last_save_time` INFO shows. An append-only-file rewrite is not a save in Redis
/// either.
pub fn lastsave(ctx: &mut Ctx) -> Outcome {
    Reply::Int((ctx.shared.started_unix_ms / 1000) as i64).into()
}

/// WAIT numreplicas timeout: no replica ever acknowledges, so the answer is 0 — at once when
/// none is asked for (or inside MULTI / a script), else after the timeout (0 = forever) as
/// Redis waits, blocking only this client.
pub fn wait(ctx: &mut Ctx) -> Outcome {
    let wanted = match int_arg(&ctx.args[1]) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    let timeout = match timeout_ms_arg(&ctx.args[2]) {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    if wanted <= 0 || ctx.nested || ctx.client.multi.is_some() {
        return Reply::Int(0).into();
    }
    Outcome::Block {
        keys: Vec::new(),
        op: BlockOp::Wait,
        timeout,
    }
}

/// A timeout in integer milliseconds (WAIT's), `None` for 0 (forever).
fn timeout_ms_arg(arg: &[u8]) -> Result<Option<std::time::Duration>, Reply> {
    let ms = super::parse_i64(arg).ok_or_else(|| Reply::error(msg::TIMEOUT_NOT_INT))?;
    if ms < 0 {
        return Err(Reply::error(msg::TIMEOUT_NEGATIVE));
    }
    Ok((ms > 0).then(|| std::time::Duration::from_millis(ms as u64)))
}

#[cfg(test)]
mod tests {
    use super::bucket_label_us;

    #[test]
    fn bucket_labels_are_the_ones_redis_prints() {
        // Measured on redis-server 7.0.15: 1, 2, 4, 8, 16, 33, 66, 132, …, 528, …, 4227, 16908.
        let labels: Vec<u64> = (0..15).map(bucket_label_us).collect();
        assert_eq!(&labels[..9], &[1, 2, 4, 8, 16, 33, 66, 132, 264]);
        assert_eq!(labels[9], 528);
        assert_eq!(labels[12], 4227);
        assert_eq!(labels[14], 16908);
    }
}
