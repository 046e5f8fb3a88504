//! Every parameter Redis 7.0 knows, with its type, range and default, and how a value given to
//! CONFIG SET is checked and written the way CONFIG GET shows it.
//!
//! The names, defaults, kinds and ranges are redis-server 7.0.15's (read from `CONFIG GET *`
//! and from the errors its CONFIG SET gives). Whether a parameter changes anything here is
//! decided by `config.rs`; this module only knows what a valid value is.
//!
//! To add a parameter: one row in [`PARAMS`] (kept in name order). A value that needs more
//! than a type check gets a `Custom` validator: `fn(value, current) -> Result<canonical,
//! reason>`, where `reason` is the text after Redis's "CONFIG SET failed … - " (as
//! `notify-keyspace-events` has `keyspace_events`, which writes the flags in their canonical
//! order); applying a value is an arm in `config.rs`'s `apply` and `live`.

use super::args::{parse_f64, parse_i64};
use super::config::parse_memory;
use crate::reply::msg;

/// What a value must look like.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `yes` or `no`, any case.
    Bool,
    /// An integer as Redis reads one (no `+`, spaces or leading zeros) within the range.
    Int { min: i64, max: i64 },
    /// Bytes, or a number with `k`/`kb`/`m`/`mb`/`g`/`gb`; shown in bytes.
    Memory { min: u64 },
    /// A memory value or a percentage up to `100%` (of maxmemory).
    MemoryOrPercent,
    /// One of these names, any case; shown in lower case.
    Enum(&'static [&'static str]),
    /// Any text, kept as given.
    Text,
    /// Checked by a function of the value and the current value (which it may merge into).
    Custom(fn(&str, &str) -> Result<String, String>),
}

/// Whether CONFIG SET may change a parameter (Redis's immutable and protected configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Mutable,
    Immutable,
    Protected,
}

#[derive(Debug)]
pub struct Param {
    /// The name as CONFIG GET lists it (an old alias is listed under its own name too).
    pub name: &'static str,
    /// The parameter an alias stands for (its own name otherwise): values are stored under it.
    pub canonical: &'static str,
    pub kind: Kind,
    pub access: Access,
    pub default: &'static str,
}

const fn p(
    name: &'static str,
    canonical: &'static str,
    kind: Kind,
    access: Access,
    default: &'static str,
) -> Param {
    Param {
        name,
        canonical,
        kind,
        access,
        default,
    }
}

/// The parameter called `name` (any case), alias or not.
pub fn lookup(name: &str) -> Option<&'static Param> {
    PARAMS
        .binary_search_by(|p| cmp_ignore_case(p.name, name))
        .ok()
        .map(|i| &PARAMS[i])
}

fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Checks `value` for `kind`; the value as CONFIG GET will show it, or the reason it is refused.
pub fn check(kind: Kind, value: &str, current: &str) -> Result<String, String> {
    match kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            v @ ("yes" | "no") => Ok(v.to_string()),
            _ => Err(msg::CONFIG_NOT_YES_NO.into()),
        },
        Kind::Int { min, max } => {
            let n = parse_i64(value.as_bytes()).ok_or(msg::CONFIG_NOT_INTEGER)?;
            if n < min || n > max {
                return Err(msg::config_range(min, max));
            }
            Ok(n.to_string())
        }
        Kind::Memory { min } => {
            let n = parse_memory(value).ok_or(msg::CONFIG_NOT_MEMORY)?;
            if n < min {
                return Err(msg::config_range(min as i64, i64::MAX));
            }
            Ok(n.to_string())
        }
        Kind::MemoryOrPercent => match value.strip_suffix('%') {
            Some(digits) => match parse_i64(digits.as_bytes()) {
                Some(n) if (0..=100).contains(&n) => Ok(value.to_string()),
                Some(n) if n > 100 => Err(msg::CONFIG_PERCENT_RANGE.into()),
                _ => Err(msg::CONFIG_NOT_MEMORY_OR_PERCENT.into()),
            },
            None => parse_memory(value)
                .map(|n| n.to_string())
                .ok_or_else(|| msg::CONFIG_NOT_MEMORY_OR_PERCENT.into()),
        },
        Kind::Enum(names) => names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(value))
            .map(|n| n.to_string())
            .ok_or_else(|| msg::config_one_of(names)),
        Kind::Text => Ok(value.to_string()),
        Kind::Custom(f) => f(value, current),
    }
}

/// `notify-keyspace-events`: event-class letters, kept in Redis's canonical spelling.
fn keyspace_events(value: &str, _: &str) -> Result<String, String> {
    crate::pubsub::events::parse(value.as_bytes())
        .map(crate::pubsub::events::to_text)
        .ok_or_else(|| msg::CONFIG_EVENT_CLASS.to_string())
}

/// `queue-delayed-sets` (ours): pairs of a key pattern and the unit its scores are in.
fn delayed_sets(value: &str, _: &str) -> Result<String, String> {
    crate::metrics::parse_delayed_patterns(value)?;
    Ok(value.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn any_text(value: &str, _: &str) -> Result<String, String> {
    Ok(value.to_string())
}

/// `save`: pairs of seconds and changes (empty: none).
fn save_points(value: &str, _: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if !parts.len().is_multiple_of(2)
        || parts
            .iter()
            .any(|p| parse_i64(p.as_bytes()).is_none_or(|n| n < 0))
    {
        return Err(msg::CONFIG_INVALID_SAVE.into());
    }
    Ok(parts.join(" "))
}

/// `client-output-buffer-limit`: `<class> <hard> <soft> <soft seconds>` groups, each replacing
/// that class's limits in the current value.
fn client_output_buffer_limit(value: &str, current: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if !parts.len().is_multiple_of(4) {
        return Err(msg::CONFIG_BUFFER_LIMIT_ARGS.into());
    }
    let mut classes: Vec<[String; 4]> = current
        .split_whitespace()
        .collect::<Vec<_>>()
        .chunks(4)
        .filter(|c| c.len() == 4)
        .map(|c| {
            [
                c[0].to_string(),
                c[1].to_string(),
                c[2].to_string(),
                c[3].to_string(),
            ]
        })
        .collect();
    for group in parts.chunks(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => "normal",
            "slave" | "replica" => "slave",
            "pubsub" => "pubsub",
            _ => return Err(msg::CONFIG_BUFFER_LIMIT_CLASS.into()),
        };
        let (Some(hard), Some(soft), Some(seconds)) = (
            parse_memory(group[1]),
            parse_memory(group[2]),
            parse_i64(group[3].as_bytes()).filter(|s| *s >= 0),
        ) else {
            return Err(msg::CONFIG_BUFFER_LIMIT_VALUES.into());
        };
        let limits = [
            class.to_string(),
            hard.to_string(),
            soft.to_string(),
            seconds.to_string(),
        ];
        match classes.iter_mut().find(|c| c[0] == class) {
            Some(slot) => *slot = limits,
            None => classes.push(limits),
        }
    }
    Ok(classes.iter().map(|c| c.join(" ")).collect::<Vec<_>>().join(" "))
}

/// `oom-score-adj`: `relative` is another name for `yes`, and is shown as such.
fn oom_score_adj(value: &str, current: &str) -> Result<String, String> {
    let names = &["no", "yes", "relative", "absolute"];
    match check(Kind::Enum(names), value, current)?.as_str() {
        "relative" => Ok("yes".into()),
        other => Ok(other.to_string()),
    }
}

/// `proc-title-template`: only known `{variables}`, and something left once the title (and
/// the variables that may be empty) are.
fn proc_title_template(value: &str, _: &str) -> Result<String, String> {
    let mut rest = value;
    let mut shown = String::new();
    while let Some(open) = rest.find('{') {
        shown.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(msg::CONFIG_PROC_TITLE_INVALID.into());
        };
        match &rest[open + 1..open + close] {
            "title" | "server-mode" | "unixsocket" | "config-file" => {}
            "listen-addr" | "port" | "tls-port" => shown.push('0'),
            _ => return Err(msg::CONFIG_PROC_TITLE_INVALID.into()),
        }
        rest = &rest[open + close + 1..];
    }
    shown.push_str(rest);
    if shown.trim().is_empty() {
        return Err(msg::CONFIG_PROC_TITLE_INVALID.into());
    }
    Ok(value.to_string())
}

/// `oom-score-adj-values`: three adjustments between -2000 and 2000.
fn oom_score_adj_values(value: &str, _: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() != 3 {
        return Err(msg::CONFIG_WRONG_ARG_COUNT.into());
    }
    let values: Option<Vec<i64>> = parts
        .iter()
        .map(|p| parse_i64(p.as_bytes()).filter(|n| (-2000..=2000).contains(n)))
        .collect();
    match values {
        Some(v) => Ok(v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")),
        None => Err(msg::CONFIG_OOM_SCORE_VALUES.into()),
    }
}

/// `latency-tracking-info-percentiles`: numbers between 0 and 100.
fn percentiles(value: &str, _: &str) -> Result<String, String> {
    let mut shown = Vec::new();
    for part in value.split_whitespace() {
        let v = parse_f64(part.as_bytes()).ok_or(msg::CONFIG_PERCENTILES_INVALID)?;
        if !(0.0..=100.0).contains(&v) {
            return Err(msg::CONFIG_PERCENTILES_RANGE.into());
        }
        shown.push(v.to_string());
    }
    Ok(shown.join(" "))
}

use Access::{Immutable, Mutable, Protected};
use Kind::{Bool, Custom, Enum, Int, Memory, MemoryOrPercent, Text};

/// Every parameter, in name order (lookups are binary searches); one row each.
#[rustfmt::skip]
pub static PARAMS: &[Param] = &[
    p("acl-pubsub-default", "acl-pubsub-default", Enum(&["allchannels", "resetchannels"]), Mutable, "resetchannels"),
    p("aclfile", "aclfile", Text, Immutable, ""),
    p("acllog-max-len", "acllog-max-len", Int { min: 0, max: i64::MAX }, Mutable, "128"),
    p("active-defrag-cycle-max", "active-defrag-cycle-max", Int { min: 1, max: 99 }, Mutable, "25"),
    p("active-defrag-cycle-min", "active-defrag-cycle-min", Int { min: 1, max: 99 }, Mutable, "1"),
    p("active-defrag-ignore-bytes", "active-defrag-ignore-bytes", Memory { min: 1 }, Mutable, "104857600"),
    p("active-defrag-max-scan-fields", "active-defrag-max-scan-fields", Int { min: 1, max: i64::MAX }, Mutable, "1000"),
    p("active-defrag-threshold-lower", "active-defrag-threshold-lower", Int { min: 0, max: 1000 }, Mutable, "10"),
    p("active-defrag-threshold-upper", "active-defrag-threshold-upper", Int { min: 0, max: 1000 }, Mutable, "100"),
    p("active-expire-effort", "active-expire-effort", Int { min: 1, max: 10 }, Mutable, "1"),
    p("activedefrag", "activedefrag", Bool, Mutable, "no"),
    p("activerehashing", "activerehashing", Bool, Mutable, "yes"),
    p("always-show-logo", "always-show-logo", Text, Immutable, "no"),
    p("aof-disable-auto-gc", "aof-disable-auto-gc", Bool, Mutable, "no"),
    p("aof-load-truncated", "aof-load-truncated", Bool, Mutable, "yes"),
    p("aof-rewrite-incremental-fsync", "aof-rewrite-incremental-fsync", Bool, Mutable, "yes"),
    p("aof-timestamp-enabled", "aof-timestamp-enabled", Bool, Mutable, "no"),
    p("aof-use-rdb-preamble", "aof-use-rdb-preamble", Bool, Mutable, "yes"),
    p("aof_rewrite_cpulist", "aof_rewrite_cpulist", Text, Immutable, ""),
    p("appenddirname", "appenddirname", Text, Immutable, "appendonlydir"),
    p("appendfilename", "appendfilename", Text, Immutable, "appendonly.aof"),
    p("appendfsync", "appendfsync", Enum(&["everysec", "always", "no"]), Mutable, "everysec"),
    p("appendonly", "appendonly", Bool, Mutable, "no"),
    p("auto-aof-rewrite-min-size", "auto-aof-rewrite-min-size", Memory { min: 0 }, Mutable, "67108864"),
    p("auto-aof-rewrite-percentage", "auto-aof-rewrite-percentage", Int { min: 0, max: 2147483647 }, Mutable, "100"),
    p("bgsave_cpulist", "bgsave_cpulist", Text, Immutable, ""),
    p("bind", "bind", Custom(any_text), Mutable, "* -::*"),
    p("bind-source-addr", "bind-source-addr", Text, Mutable, ""),
    p("bio_cpulist", "bio_cpulist", Text, Immutable, ""),
    p("busy-reply-threshold", "busy-reply-threshold", Int { min: 0, max: i64::MAX }, Mutable, "5000"),
    p("client-output-buffer-limit", "client-output-buffer-limit", Custom(client_output_buffer_limit), Mutable, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
    p("client-query-buffer-limit", "client-query-buffer-limit", Memory { min: 1048576 }, Mutable, "1073741824"),
    p("cluster-allow-pubsubshard-when-down", "cluster-allow-pubsubshard-when-down", Bool, Mutable, "yes"),
    p("cluster-allow-reads-when-down", "cluster-allow-reads-when-down", Bool, Mutable, "no"),
    p("cluster-allow-replica-migration", "cluster-allow-replica-migration", Bool, Mutable, "yes"),
    p("cluster-announce-bus-port", "cluster-announce-bus-port", Int { min: 0, max: 65535 }, Mutable, "0"),
    p("cluster-announce-hostname", "cluster-announce-hostname", Text, Mutable, ""),
    p("cluster-announce-ip", "cluster-announce-ip", Text, Mutable, ""),
    p("cluster-announce-port", "cluster-announce-port", Int { min: 0, max: 65535 }, Mutable, "0"),
    p("cluster-announce-tls-port", "cluster-announce-tls-port", Int { min: 0, max: 65535 }, Mutable, "0"),
    p("cluster-config-file", "cluster-config-file", Text, Immutable, "nodes.conf"),
    p("cluster-enabled", "cluster-enabled", Text, Immutable, "no"),
    p("cluster-link-sendbuf-limit", "cluster-link-sendbuf-limit", Memory { min: 0 }, Mutable, "0"),
    p("cluster-migration-barrier", "cluster-migration-barrier", Int { min: 0, max: 2147483647 }, Mutable, "1"),
    p("cluster-node-timeout", "cluster-node-timeout", Int { min: 0, max: i64::MAX }, Mutable, "15000"),
    p("cluster-port", "cluster-port", Text, Immutable, "0"),
    p("cluster-preferred-endpoint-type", "cluster-preferred-endpoint-type", Enum(&["ip", "hostname", "unknown-endpoint"]), Mutable, "ip"),
    p("cluster-replica-no-failover", "cluster-replica-no-failover", Bool, Mutable, "no"),
    p("cluster-replica-validity-factor", "cluster-replica-validity-factor", Int { min: 0, max: 2147483647 }, Mutable, "10"),
    p("cluster-require-full-coverage", "cluster-require-full-coverage", Bool, Mutable, "yes"),
    p("cluster-slave-no-failover", "cluster-replica-no-failover", Bool, Mutable, "no"),
    p("cluster-slave-validity-factor", "cluster-replica-validity-factor", Int { min: 0, max: 2147483647 }, Mutable, "10"),
    p("crash-log-enabled", "crash-log-enabled", Bool, Mutable, "yes"),
    p("crash-memcheck-enabled", "crash-memcheck-enabled", Bool, Mutable, "yes"),
    p("daemonize", "daemonize", Text, Immutable, "no"),
    p("databases", "databases", Text, Immutable, "16"),
    p("dbfilename", "dbfilename", Text, Protected, "dump.rdb"),
    p("dir", "dir", Text, Protected, ""),
    p("disable-thp", "disable-thp", Text, Immutable, "yes"),
    p("dynamic-hz", "dynamic-hz", Bool, Mutable, "yes"),
    p("enable-debug-command", "enable-debug-command", Text, Immutable, "no"),
    p("enable-module-command", "enable-module-command", Text, Immutable, "no"),
    p("enable-protected-configs", "enable-protected-configs", Text, Immutable, "no"),
    p("hash-max-listpack-entries", "hash-max-listpack-entries", Int { min: 0, max: i64::MAX }, Mutable, "512"),
    p("hash-max-listpack-value", "hash-max-listpack-value", Memory { min: 0 }, Mutable, "64"),
    p("hash-max-ziplist-entries", "hash-max-listpack-entries", Int { min: 0, max: i64::MAX }, Mutable, "512"),
    p("hash-max-ziplist-value", "hash-max-listpack-value", Memory { min: 0 }, Mutable, "64"),
    p("hll-sparse-max-bytes", "hll-sparse-max-bytes", Memory { min: 0 }, Mutable, "3000"),
    p("hz", "hz", Int { min: 0, max: 2147483647 }, Mutable, "10"),
    p("ignore-warnings", "ignore-warnings", Text, Mutable, ""),
    p("io-threads", "io-threads", Text, Immutable, "1"),
    p("io-threads-do-reads", "io-threads-do-reads", Text, Immutable, "no"),
    p("jemalloc-bg-thread", "jemalloc-bg-thread", Bool, Mutable, "yes"),
    p("latency-monitor-threshold", "latency-monitor-threshold", Int { min: 0, max: i64::MAX }, Mutable, "0"),
    p("latency-tracking", "latency-tracking", Bool, Mutable, "yes"),
    p("latency-tracking-info-percentiles", "latency-tracking-info-percentiles", Custom(percentiles), Mutable, "50 99 99.9"),
    p("lazyfree-lazy-eviction", "lazyfree-lazy-eviction", Bool, Mutable, "no"),
    p("lazyfree-lazy-expire", "lazyfree-lazy-expire", Bool, Mutable, "no"),
    p("lazyfree-lazy-server-del", "lazyfree-lazy-server-del", Bool, Mutable, "no"),
    p("lazyfree-lazy-user-del", "lazyfree-lazy-user-del", Bool, Mutable, "no"),
    p("lazyfree-lazy-user-flush", "lazyfree-lazy-user-flush", Bool, Mutable, "no"),
    p("lfu-decay-time", "lfu-decay-time", Int { min: 0, max: 2147483647 }, Mutable, "1"),
    p("lfu-log-factor", "lfu-log-factor", Int { min: 0, max: 2147483647 }, Mutable, "10"),
    p("list-compress-depth", "list-compress-depth", Int { min: 0, max: 2147483647 }, Mutable, "0"),
    p("list-max-listpack-size", "list-max-listpack-size", Int { min: -2147483648, max: 2147483647 }, Mutable, "-2"),
    p("list-max-ziplist-size", "list-max-listpack-size", Int { min: -2147483648, max: 2147483647 }, Mutable, "-2"),
    p("logfile", "logfile", Text, Immutable, ""),
    p("loglevel", "loglevel", Enum(&["debug", "verbose", "notice", "warning"]), Mutable, "notice"),
    p("lua-time-limit", "busy-reply-threshold", Int { min: 0, max: i64::MAX }, Mutable, "5000"),
    p("masterauth", "masterauth", Text, Mutable, ""),
    p("masteruser", "masteruser", Text, Mutable, ""),
    p("maxclients", "maxclients", Int { min: 1, max: 4294967295 }, Mutable, "10000"),
    p("maxmemory", "maxmemory", Memory { min: 0 }, Mutable, "0"),
    p("maxmemory-clients", "maxmemory-clients", MemoryOrPercent, Mutable, "0"),
    p("maxmemory-eviction-tenacity", "maxmemory-eviction-tenacity", Int { min: 0, max: 100 }, Mutable, "10"),
    p("maxmemory-policy", "maxmemory-policy", Enum(&["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction"]), Mutable, "noeviction"),
    p("maxmemory-samples", "maxmemory-samples", Int { min: 1, max: 2147483647 }, Mutable, "5"),
    p("min-replicas-max-lag", "min-replicas-max-lag", Int { min: 0, max: 2147483647 }, Mutable, "10"),
    p("min-replicas-to-write", "min-replicas-to-write", Int { min: 0, max: 2147483647 }, Mutable, "0"),
    p("min-slaves-max-lag", "min-replicas-max-lag", Int { min: 0, max: 2147483647 }, Mutable, "10"),
    p("min-slaves-to-write", "min-replicas-to-write", Int { min: 0, max: 2147483647 }, Mutable, "0"),
    p("no-appendfsync-on-rewrite", "no-appendfsync-on-rewrite", Bool, Mutable, "no"),
    p("notify-keyspace-events", "notify-keyspace-events", Custom(keyspace_events), Mutable, ""),
    p("oom-score-adj", "oom-score-adj", Custom(oom_score_adj), Mutable, "no"),
    p("oom-score-adj-values", "oom-score-adj-values", Custom(oom_score_adj_values), Mutable, "0 200 800"),
    p("pidfile", "pidfile", Text, Immutable, ""),
    p("port", "port", Int { min: 0, max: 65535 }, Mutable, "6379"),
    p("proc-title-template", "proc-title-template", Custom(proc_title_template), Mutable, "{title} {listen-addr} {server-mode}"),
    p("propagation-error-behavior", "propagation-error-behavior", Enum(&["ignore", "panic", "panic-on-replicas"]), Mutable, "ignore"),
    p("protected-mode", "protected-mode", Bool, Mutable, "yes"),
    p("proto-max-bulk-len", "proto-max-bulk-len", Memory { min: 1048576 }, Mutable, "536870912"),
    // Ours: which sorted sets are delayed-job queues (INFO queues, QSTATS, /metrics).
    p("queue-delayed-sets", "queue-delayed-sets", Custom(delayed_sets), Mutable, crate::metrics::DEFAULT_DELAYED_PATTERNS),
    p("rdb-del-sync-files", "rdb-del-sync-files", Bool, Mutable, "no"),
    p("rdb-save-incremental-fsync", "rdb-save-incremental-fsync", Bool, Mutable, "yes"),
    p("rdbchecksum", "rdbchecksum", Text, Immutable, "yes"),
    p("rdbcompression", "rdbcompression", Bool, Mutable, "yes"),
    p("repl-backlog-size", "repl-backlog-size", Memory { min: 1 }, Mutable, "1048576"),
    p("repl-backlog-ttl", "repl-backlog-ttl", Int { min: 0, max: i64::MAX }, Mutable, "3600"),
    p("repl-disable-tcp-nodelay", "repl-disable-tcp-nodelay", Bool, Mutable, "no"),
    p("repl-diskless-load", "repl-diskless-load", Enum(&["disabled", "on-empty-db", "swapdb"]), Mutable, "disabled"),
    p("repl-diskless-sync", "repl-diskless-sync", Bool, Mutable, "yes"),
    p("repl-diskless-sync-delay", "repl-diskless-sync-delay", Int { min: 0, max: 2147483647 }, Mutable, "5"),
    p("repl-diskless-sync-max-replicas", "repl-diskless-sync-max-replicas", Int { min: 0, max: 2147483647 }, Mutable, "0"),
    p("repl-ping-replica-period", "repl-ping-replica-period", Int { min: 1, max: 2147483647 }, Mutable, "10"),
    p("repl-ping-slave-period", "repl-ping-replica-period", Int { min: 1, max: 2147483647 }, Mutable, "10"),
    p("repl-timeout", "repl-timeout", Int { min: 1, max: 2147483647 }, Mutable, "60"),
    p("replica-announce-ip", "replica-announce-ip", Text, Mutable, ""),
    p("replica-announce-port", "replica-announce-port", Int { min: 0, max: 65535 }, Mutable, "0"),
    p("replica-announced", "replica-announced", Bool, Mutable, "yes"),
    p("replica-ignore-disk-write-errors", "replica-ignore-disk-write-errors", Bool, Mutable, "no"),
    p("replica-ignore-maxmemory", "replica-ignore-maxmemory", Bool, Mutable, "yes"),
    p("replica-lazy-flush", "replica-lazy-flush", Bool, Mutable, "no"),
    p("replica-priority", "replica-priority", Int { min: 0, max: 2147483647 }, Mutable, "100"),
    p("replica-read-only", "replica-read-only", Bool, Mutable, "yes"),
    p("replica-serve-stale-data", "replica-serve-stale-data", Bool, Mutable, "yes"),
    p("replicaof", "replicaof", Text, Immutable, ""),
    p("requirepass", "requirepass", Text, Mutable, ""),
    p("sanitize-dump-payload", "sanitize-dump-payload", Enum(&["no", "yes", "clients"]), Mutable, "no"),
    p("save", "save", Custom(save_points), Mutable, ""),
    p("server_cpulist", "server_cpulist", Text, Immutable, ""),
    p("set-max-intset-entries", "set-max-intset-entries", Int { min: 0, max: i64::MAX }, Mutable, "512"),
    p("set-proc-title", "set-proc-title", Text, Immutable, "yes"),
    p("shutdown-on-sigint", "shutdown-on-sigint", Enum(&["default", "save", "nosave", "now", "force"]), Mutable, "default"),
    p("shutdown-on-sigterm", "shutdown-on-sigterm", Enum(&["default", "save", "nosave", "now", "force"]), Mutable, "default"),
    p("shutdown-timeout", "shutdown-timeout", Int { min: 0, max: 2147483647 }, Mutable, "10"),
    p("slave-announce-ip", "replica-announce-ip", Text, Mutable, ""),
    p("slave-announce-port", "replica-announce-port", Int { min: 0, max: 65535 }, Mutable, "0"),
    p("slave-ignore-maxmemory", "replica-ignore-maxmemory", Bool, Mutable, "yes"),
    p("slave-lazy-flush", "replica-lazy-flush", Bool, Mutable, "no"),
    p("slave-priority", "replica-priority", Int { min: 0, max: 2147483647 }, Mutable, "100"),
    p("slave-read-only", "replica-read-only", Bool, Mutable, "yes"),
    p("slave-serve-stale-data", "replica-serve-stale-data", Bool, Mutable, "yes"),
    p("slaveof", "replicaof", Text, Immutable, ""),
    p("slowlog-log-slower-than", "slowlog-log-slower-than", Int { min: -1, max: i64::MAX }, Mutable, "10000"),
    p("slowlog-max-len", "slowlog-max-len", Int { min: 0, max: i64::MAX }, Mutable, "128"),
    p("socket-mark-id", "socket-mark-id", Text, Immutable, "0"),
    p("stop-writes-on-bgsave-error", "stop-writes-on-bgsave-error", Bool, Mutable, "yes"),
    p("stream-node-max-bytes", "stream-node-max-bytes", Memory { min: 0 }, Mutable, "4096"),
    p("stream-node-max-entries", "stream-node-max-entries", Int { min: 0, max: i64::MAX }, Mutable, "100"),
    p("supervised", "supervised", Text, Immutable, "no"),
    p("syslog-enabled", "syslog-enabled", Text, Immutable, "no"),
    p("syslog-facility", "syslog-facility", Text, Immutable, "local0"),
    p("syslog-ident", "syslog-ident", Text, Immutable, "redis"),
    p("tcp-backlog", "tcp-backlog", Text, Immutable, "511"),
    p("tcp-keepalive", "tcp-keepalive", Int { min: 0, max: 2147483647 }, Mutable, "300"),
    p("timeout", "timeout", Int { min: 0, max: 2147483647 }, Mutable, "0"),
    p("tls-auth-clients", "tls-auth-clients", Enum(&["no", "yes", "optional"]), Mutable, "yes"),
    p("tls-ca-cert-dir", "tls-ca-cert-dir", Text, Mutable, ""),
    p("tls-ca-cert-file", "tls-ca-cert-file", Text, Mutable, ""),
    p("tls-cert-file", "tls-cert-file", Text, Mutable, ""),
    p("tls-ciphers", "tls-ciphers", Text, Mutable, ""),
    p("tls-ciphersuites", "tls-ciphersuites", Text, Mutable, ""),
    p("tls-client-cert-file", "tls-client-cert-file", Text, Mutable, ""),
    p("tls-client-key-file", "tls-client-key-file", Text, Mutable, ""),
    p("tls-client-key-file-pass", "tls-client-key-file-pass", Text, Mutable, ""),
    p("tls-cluster", "tls-cluster", Bool, Mutable, "no"),
    p("tls-dh-params-file", "tls-dh-params-file", Text, Mutable, ""),
    p("tls-key-file", "tls-key-file", Text, Mutable, ""),
    p("tls-key-file-pass", "tls-key-file-pass", Text, Mutable, ""),
    p("tls-port", "tls-port", Int { min: 0, max: 65535 }, Mutable, "0"),
    p("tls-prefer-server-ciphers", "tls-prefer-server-ciphers", Bool, Mutable, "no"),
    p("tls-protocols", "tls-protocols", Text, Mutable, ""),
    p("tls-replication", "tls-replication", Bool, Mutable, "no"),
    p("tls-session-cache-size", "tls-session-cache-size", Int { min: 0, max: 2147483647 }, Mutable, "20480"),
    p("tls-session-cache-timeout", "tls-session-cache-timeout", Int { min: 0, max: 2147483647 }, Mutable, "300"),
    p("tls-session-caching", "tls-session-caching", Bool, Mutable, "yes"),
    p("tracking-table-max-keys", "tracking-table-max-keys", Int { min: 0, max: i64::MAX }, Mutable, "1000000"),
    p("unixsocket", "unixsocket", Text, Immutable, ""),
    p("unixsocketperm", "unixsocketperm", Text, Immutable, "0"),
    p("zset-max-listpack-entries", "zset-max-listpack-entries", Int { min: 0, max: i64::MAX }, Mutable, "128"),
    p("zset-max-listpack-value", "zset-max-listpack-value", Memory { min: 0 }, Mutable, "64"),
    p("zset-max-ziplist-entries", "zset-max-listpack-entries", Int { min: 0, max: i64::MAX }, Mutable, "128"),
    p("zset-max-ziplist-value", "zset-max-listpack-value", Memory { min: 0 }, Mutable, "64"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_aliases_point_at_parameters() {
        for pair in PARAMS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for param in PARAMS {
            let target = lookup(param.canonical).expect("alias target exists");
            assert_eq!(target.canonical, target.name, "{}", param.name);
        }
        assert_eq!(lookup("MaxMemory").map(|p| p.name), Some("maxmemory"));
        assert!(lookup("no-such-param").is_none());
    }

    #[test]
    fn values_are_checked_and_shown_as_redis_shows_them() {
        let k = |name: &str| lookup(name).expect("known").kind;
        assert_eq!(check(k("maxmemory"), "1gb", "0"), Ok((1u64 << 30).to_string()));
        assert_eq!(
            check(k("maxmemory"), "bla", "0"),
            Err(msg::CONFIG_NOT_MEMORY.into())
        );
        assert_eq!(check(k("activerehashing"), "NO", "yes"), Ok("no".into()));
        assert_eq!(
            check(k("hz"), "-1", "10"),
            Err("argument must be between 0 and 2147483647 inclusive".into())
        );
        assert_eq!(check(k("hz"), "05", "10"), Err(msg::CONFIG_NOT_INTEGER.into()));
        assert_eq!(check(k("loglevel"), "WARNING", "notice"), Ok("warning".into()));
        assert_eq!(check(k("maxmemory-clients"), "10%", "0"), Ok("10%".into()));
        assert_eq!(
            check(
                k("client-output-buffer-limit"),
                "normal 1mb 2 3",
                lookup("client-output-buffer-limit").map_or("", |p| p.default)
            ),
            Ok("normal 1048576 2 3 slave 268435456 67108864 60 pubsub 33554432 8388608 60".into())
        );
        assert_eq!(
            check(k("latency-tracking-info-percentiles"), "50 99.9", ""),
            Ok("50 99.9".into())
        );
        assert!(check(k("oom-score-adj-values"), "1 2 3000", "").is_err());
    }
}
