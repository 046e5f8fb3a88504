//! Pub/sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB, MONITOR,
//! and the MONITOR feed every executed command passes through.

use super::{Ctx, Outcome};
use crate::pubsub::{encode_push_parts, Kind};
use crate::reply::{msg, Protocol, Reply};
use bytes::{Bytes, BytesMut};

/// The reply word of a subscription change.
fn verb(kind: Kind, subscribe: bool) -> &'static [u8] {
    match (kind, subscribe) {
        (Kind::Channel, true) => b"subscribe",
        (Kind::Pattern, true) => b"psubscribe",
        (Kind::Shard, true) => b"ssubscribe",
        (Kind::Channel, false) => b"unsubscribe",
        (Kind::Pattern, false) => b"punsubscribe",
        (Kind::Shard, false) => b"sunsubscribe",
    }
}

/// What a (un)subscribe reply counts: shard subscriptions apart from the others, as Redis.
fn count(ctx: &Ctx, kind: Kind) -> i64 {
    let mailbox = &ctx.client.info.pubsub;
    match kind {
        Kind::Shard => mailbox.shard_channels.load(std::sync::atomic::Ordering::Relaxed) as i64,
        _ => mailbox.subscriptions() as i64,
    }
}

fn subscribe_kind(ctx: &mut Ctx, kind: Kind) -> Outcome {
    let mailbox = ctx.client.info.pubsub.clone();
    let mut out = BytesMut::new();
    for name in &ctx.args[1..] {
        ctx.engine.pubsub.subscribe(&mailbox, kind, name);
        let n = count(ctx, kind);
        encode_push_parts(
            ctx.client.proto,
            &[Some(verb(kind, true)), Some(name)],
            Some(n),
            &mut out,
        );
    }
    Reply::Raw(out.freeze()).into()
}

fn unsubscribe_kind(ctx: &mut Ctx, kind: Kind) -> Outcome {
    let mailbox = ctx.client.info.pubsub.clone();
    let names: Vec<Bytes> = if ctx.args.len() > 1 {
        ctx.args[1..].to_vec()
    } else {
        ctx.engine.pubsub.subscriptions_of(mailbox.client, kind)
    };
    let mut out = BytesMut::new();
    let proto = ctx.client.proto;
    if names.is_empty() {
        let n = count(ctx, kind);
        encode_push_parts(proto, &[Some(verb(kind, false)), None], Some(n), &mut out);
    }
    for name in &names {
        ctx.engine.pubsub.unsubscribe(&mailbox, kind, name);
        let n = count(ctx, kind);
        encode_push_parts(proto, &[Some(verb(kind, false)), Some(name)], Some(n), &mut out);
    }
    Reply::Raw(out.freeze()).into()
}

pub fn subscribe(ctx: &mut Ctx) -> Outcome {
    subscribe_kind(ctx, Kind::Channel)
}

pub fn psubscribe(ctx: &mut Ctx) -> Outcome {
    subscribe_kind(ctx, Kind::Pattern)
}

pub fn ssubscribe(ctx: &mut Ctx) -> Outcome {
    subscribe_kind(ctx, Kind::Shard)
}

pub fn unsubscribe(ctx: &mut Ctx) -> Outcome {
    unsubscribe_kind(ctx, Kind::Channel)
}

pub fn punsubscribe(ctx: &mut Ctx) -> Outcome {
    unsubscribe_kind(ctx, Kind::Pattern)
}

pub fn sunsubscribe(ctx: &mut Ctx) -> Outcome {
    unsubscribe_kind(ctx, Kind::Shard)
}

pub fn publish(ctx: &mut Ctx) -> Outcome {
    let n = ctx.engine.pubsub.publish(&ctx.args[1], &ctx.args[2], false);
    Reply::Int(n as i64).into()
}

pub fn spublish(ctx: &mut Ctx) -> Outcome {
    let n = ctx.engine.pubsub.publish(&ctx.args[1], &ctx.args[2], true);
    Reply::Int(n as i64).into()
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

pub fn pubsub(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    let argc = ctx.args.len();
    match (sub.as_slice(), argc) {
        (b"help", 2) => Reply::Array(PUBSUB_HELP.iter().map(|s| Reply::status(*s)).collect()).into(),
        (b"channels" | b"shardchannels", 2 | 3) => {
            let shard = sub == b"shardchannels";
            let pattern = ctx.args.get(2).map(|p| &p[..]);
            let names = ctx.engine.pubsub.active_channels(shard, pattern);
            Reply::Array(names.into_iter().map(Reply::Bulk).collect()).into()
        }
        (b"numsub" | b"shardnumsub", _) => {
            let shard = sub == b"shardnumsub";
            // A flat array in RESP3 too, as Redis 7.0 answers.
            let mut items = Vec::with_capacity(2 * (argc - 2));
            for c in &ctx.args[2..] {
                let n = ctx.engine.pubsub.subscriber_count(shard, c);
                items.push(Reply::Bulk(c.clone()));
                items.push(Reply::Int(n as i64));
            }
            Reply::Array(items).into()
        }
        (b"numpat", 2) => Reply::Int(ctx.engine.pubsub.pattern_count() as i64).into(),
        (b"help" | b"numpat", _) => {
            let full = format!("pubsub|{}", String::from_utf8_lossy(&sub));
            Reply::error(msg::wrong_args(&full)).into()
        }
        (b"channels" | b"shardchannels", _) => {
            Reply::error(msg::subcommand_arity("pubsub", &ctx.args[1])).into()
        }
        _ => Reply::error(msg::unknown_subcommand("pubsub", &ctx.args[1])).into(),
    }
}

pub fn monitor(ctx: &mut Ctx) -> Outcome {
    if ctx.nested {
        return Reply::error(msg::MONITOR_DENY_BLOCKING).into();
    }
    let mailbox = ctx.client.info.pubsub.clone();
    if mailbox.monitor.load(std::sync::atomic::Ordering::Relaxed) {
        // Already monitoring: Redis answers nothing.
        return Reply::Raw(Bytes::new()).into();
    }
    ctx.engine.pubsub.start_monitor(&mailbox);
    Reply::Ok.into()
}

/// Whether the commands a RESP2 client in subscribed mode may still run include `name`.
pub fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// Where a monitored command came from: a client's address, or a script.
pub enum Origin<'a> {
    Client(&'a std::net::SocketAddr),
    Script,
}

/// A MONITOR line as Redis formats it: `<sec>.<usec> [<db> <addr>|lua] "arg" ...`, with
/// passwords of AUTH and HELLO … AUTH replaced by `(redacted)`.
pub fn monitor_line(unix_us: u64, db: usize, origin: Origin, args: &[Bytes]) -> Bytes {
    let mut line = format!("{}.{:06} [{} ", unix_us / 1_000_000, unix_us % 1_000_000, db);
    match origin {
        Origin::Client(addr) => line.push_str(&addr.to_string()),
        Origin::Script => line.push_str("lua"),
    }
    line.push(']');
    let mut bytes = line.into_bytes();
    let redact_from = if args[0].eq_ignore_ascii_case(b"auth") {
        1
    } else {
        usize::MAX
    };
    let hello_auth = args[0].eq_ignore_ascii_case(b"hello");
    let mut i = 0;
    while i < args.len() {
        bytes.push(b' ');
        let redact = i >= redact_from;
        if hello_auth && args[i].eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            quote(&mut bytes, &args[i]);
            bytes.extend_from_slice(b" \"(redacted)\" \"(redacted)\"");
            i += 3;
            continue;
        }
        if redact {
            bytes.extend_from_slice(b"\"(redacted)\"");
        } else {
            quote(&mut bytes, &args[i]);
        }
        i += 1;
    }
    Bytes::from(bytes)
}

/// Quotes an argument as Redis's `sdscatrepr` does.
fn quote(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'"');
    for &c in arg {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// PING's answer to a RESP2 client in subscribed mode: `pong` and the message as an array.
pub fn subscribed_ping(proto: Protocol, message: Option<&Bytes>) -> Option<Reply> {
    (proto == Protocol::Resp2).then(|| {
        Reply::Array(vec![
            Reply::bulk("pong"),
            Reply::Bulk(message.cloned().unwrap_or_default()),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_quote_and_redact_as_redis() {
        let addr: std::net::SocketAddr = "127.0.0.1:60866".parse().unwrap_or_else(|_| unreachable!());
        let args = |v: &[&[u8]]| v.iter().map(|a| Bytes::copy_from_slice(a)).collect::<Vec<_>>();
        let line = monitor_line(
            1_700_000_000_123_456,
            0,
            Origin::Client(&addr),
            &args(&[b"set", b"k", b"a\"b\\\r\n\x01 "]),
        );
        assert_eq!(
            &line[..],
            &b"1700000000.123456 [0 127.0.0.1:60866] \"set\" \"k\" \"a\\\"b\\\\\\r\\n\\x01 \""[..]
        );
        let line = monitor_line(5, 3, Origin::Script, &args(&[b"AUTH", b"u", b"p"]));
        assert_eq!(
            &line[..],
            &b"0.000005 [3 lua] \"AUTH\" \"(redacted)\" \"(redacted)\""[..]
        );
        let line = monitor_line(
            5,
            0,
            Origin::Script,
            &args(&[b"HELLO", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"x"]),
        );
        assert_eq!(
            &line[..],
            &b"0.000005 [0 lua] \"HELLO\" \"3\" \"AUTH\" \"(redacted)\" \"(redacted)\" \"SETNAME\" \"x\""[..]
        );
    }
}
