//! INFO: the server's sections, from `server` to our own `queues`.

use super::{Ctx, Outcome, COMMANDS};
use crate::reply::Reply;
use crate::version::REDIS_VERSION;
use bytes::Bytes;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::state::resident_bytes;

/// Bytes as Redis's `*_human` fields print them (`917.48K`, `50.00M`, `0B`).
fn human_bytes(n: u64) -> String {
    let units = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (unit, size) in units {
        if n >= size {
            return format!("{:.2}{unit}", n as f64 / size as f64);
        }
    }
    format!("{n}B")
}

/// INFO cpu: CPU time from getrusage, seconds with microseconds as Redis prints them. There is
/// no single main thread here (commands run on the runtime's worker threads), so the
/// `_main_thread` fields are the thread answering INFO, as Redis's are the thread that runs
/// its commands.
fn cpu_section(out: &mut String) {
    use nix::sys::resource::{getrusage, UsageWho};
    let secs = |t: nix::sys::time::TimeVal| format!("{}.{:06}", t.tv_sec(), t.tv_usec());
    let times = |who| match getrusage(who) {
        Ok(u) => (secs(u.system_time()), secs(u.user_time())),
        Err(_) => ("0.000000".to_string(), "0.000000".to_string()),
    };
    let (sys, user) = times(UsageWho::RUSAGE_SELF);
    let (sys_children, user_children) = times(UsageWho::RUSAGE_CHILDREN);
    let (sys_main, user_main) = times(UsageWho::RUSAGE_THREAD);
    let _ = write!(
        out,
        "# CPU\r\nused_cpu_sys:{}\r\nused_cpu_user:{}\r\nused_cpu_sys_children:{}\r\nused_cpu_user_children:{}\r\nused_cpu_sys_main_thread:{}\r\nused_cpu_user_main_thread:{}\r\n\r\n",
        sys, user, sys_children, user_children, sys_main, user_main,
    );
}

/// INFO persistence, with Redis 7.0's field names; the RDB and fork fields are constant (there
/// is no RDB, and nothing forks).
fn persistence_section(ctx: &Ctx, out: &mut String) {
    let shared = ctx.shared;
    let log = shared.aof.read().clone();
    let status = log.as_ref().map(|l| &l.status);
    let flag = |b: bool| u8::from(b);
    let rewriting = status.is_some_and(|s| s.rewrite_in_progress.load(Relaxed));
    let current_rewrite_s = match status {
        Some(s) if rewriting => {
            (crate::metrics::unix_ms().saturating_sub(s.rewrite_started_ms.load(Relaxed)) / 1000) as i64
        }
        _ => -1,
    };
    let ok = |b: bool| if b { "ok" } else { "err" };
    let _ = write!(
        out,
        "# Persistence\r\nloading:{}\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:0\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{current_rewrite_s}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        flag(shared.loading.load(Relaxed)),
        ctx.engine.dirty,
        shared.started_unix_ms / 1000,
        flag(log.is_some()),
        flag(rewriting),
        flag(status.is_some_and(|s| s.rewrite_scheduled.load(Relaxed))),
        status.map_or(-1, |s| s.last_rewrite_time_s.load(Relaxed)),
        ok(status.is_none_or(|s| s.last_rewrite_ok.load(Relaxed))),
        status.map_or(0, |s| s.rewrites.load(Relaxed)),
        status.map_or(0, |s| s.rewrites_consecutive_failures.load(Relaxed)),
        ok(status.is_none_or(|s| s.last_write_ok.load(Relaxed))),
    );
    if let Some(log) = &log {
        let _ = write!(
            out,
            "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\naof_fsync_policy:{}\r\naof_writes:{}\r\naof_fsyncs:{}\r\n",
            log.status.current_size.load(Relaxed),
            log.status.base_size.load(Relaxed),
            log.buffered(),
            log.fsync().name(),
            log.status.writes.load(Relaxed),
            log.status.fsyncs.load(Relaxed),
        );
    }
    out.push_str("\r\n");
}

fn info_text(ctx: &mut Ctx, sections: &[String]) -> String {
    let all = sections.iter().any(|s| s == "all" || s == "everything");
    let default = sections.is_empty() || sections.iter().any(|s| s == "default");
    let want =
        |name: &str, in_default: bool| all || (default && in_default) || sections.iter().any(|s| s == name);
    let shared = ctx.shared;
    let mut out = String::new();
    let uptime = shared.started.elapsed().as_secs();
    if want("server", true) {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_mode:standalone\r\nserver_name:autoscale-node\r\nautoscale_node_version:{}\r\nos:{}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{hz}\r\nconfigured_hz:{hz}\r\nlru_clock:{}\r\nexecutable:autoscale-node\r\nconfig_file:\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            shared.run_id,
            shared.port.load(Relaxed),
            crate::metrics::unix_ms() * 1000,
            uptime,
            uptime / 86400,
            // Redis's LRU clock: seconds, 24 bits.
            (crate::metrics::unix_ms() / 1000) & ((1 << 24) - 1),
            hz = shared.config.read().hz,
        );
    }
    if want("clients", true) {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\n\r\n",
            shared.clients.lock().len(),
            shared.config.read().maxclients,
            ctx.engine.blocking.blocked_clients(),
            ctx.engine.blocking.blocked_clients(),
        );
    }
    if want("memory", true) {
        let rss = resident_bytes();
        let peak = shared.memory.observe(rss);
        let maxmemory = shared.memory.limit_bytes.load(Relaxed);
        let system = crate::state::total_system_memory();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\ntotal_system_memory:{system}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:{}\r\nnumber_of_cached_scripts:{}\r\nscripts_run_inline:{}\r\nscripts_moved_to_script_thread:{}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:noeviction\r\nmem_allocator:{}\r\nnote:used_memory is the process resident set size, which maxmemory is compared with\r\n\r\n",
            human_bytes(rss),
            human_bytes(rss),
            human_bytes(peak),
            human_bytes(system),
            ctx.engine.scripting().map_or(0, |s| s.used_memory()),
            ctx.engine.scripting().map_or(0, |s| s.cached_scripts()),
            shared.script_monitor.inline_runs.load(std::sync::atomic::Ordering::Relaxed),
            shared.script_monitor.migrations.load(std::sync::atomic::Ordering::Relaxed),
            human_bytes(maxmemory),
            shared.config.read().mem_allocator,
        );
    }
    if want("persistence", true) {
        persistence_section(ctx, &mut out);
    }
    if want("stats", true) {
        let st = &shared.stats;
        let rates = st.instantaneous.lock();
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\ntotal_error_replies:{}\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\n\r\n",
            st.total_connections.load(Relaxed),
            ctx.engine.stats.total,
            rates.ops.rate() as u64,
            st.net_input_bytes.load(Relaxed),
            st.net_output_bytes.load(Relaxed),
            rates.input.rate() / 1024.0,
            rates.output.rate() / 1024.0,
            st.rejected_connections.load(Relaxed),
            ctx.engine.keyspace.expired_keys,
            ctx.engine.stats.keyspace_hits,
            ctx.engine.stats.keyspace_misses,
            ctx.engine.pubsub.channel_count(),
            ctx.engine.pubsub.pattern_count(),
            ctx.engine.pubsub.shard_channel_count(),
            st.total_error_replies.load(Relaxed),
            st.reads_processed.load(Relaxed),
            st.writes_processed.load(Relaxed),
        );
    }
    if want("replication", true) {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n\r\n");
    }
    if want("cpu", true) {
        cpu_section(&mut out);
    }
    if want("modules", true) {
        out.push_str("# Modules\r\n\r\n");
    }
    if want("errorstats", true) {
        out.push_str("# Errorstats\r\n");
        for (code, n) in shared.stats.errors.lock().iter() {
            let _ = write!(out, "errorstat_{code}:count={n}\r\n");
        }
        out.push_str("\r\n");
    }
    if want("commandstats", false) {
        out.push_str("# Commandstats\r\n");
        let mut names: Vec<_> = ctx
            .engine
            .stats
            .per_command
            .iter()
            .enumerate()
            .filter(|(_, s)| s.calls + s.rejected_calls > 0)
            .map(|(i, s)| (COMMANDS[i].name, s))
            .collect();
        names.sort_by_key(|(n, _)| *n);
        for (name, s) in names {
            let per = if s.calls == 0 {
                0.0
            } else {
                s.usec as f64 / s.calls as f64
            };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}\r\n",
                s.calls, s.usec, s.rejected_calls, s.failed_calls
            );
        }
        out.push_str("\r\n");
    }
    if want("cluster", true) {
        out.push_str("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    }
    if want("keyspace", true) {
        out.push_str("# Keyspace\r\n");
        for (i, db) in ctx.engine.keyspace.iter().enumerate() {
            if !db.is_empty() {
                let _ = write!(
                    out,
                    "db{i}:keys={},expires={},avg_ttl=0\r\n",
                    db.len(),
                    db.expires.len()
                );
            }
        }
        out.push_str("\r\n");
    }
    if want("queues", true) {
        out.push_str("# Queues\r\n");
        let (queues, omitted) = crate::queue_view::listed(
            &shared.queues,
            &ctx.engine.keyspace,
            crate::metrics::MAX_LISTED_QUEUES,
        );
        if omitted > 0 {
            let _ = write!(out, "queues_omitted:{omitted}\r\n");
        }
        for q in queues {
            let label = q.label();
            let name = String::from_utf8_lossy(&label);
            let prefix = if q.db == 0 {
                String::new()
            } else {
                format!("db{}:", q.db)
            };
            let fields: Vec<String> = q.fields().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(out, "queue_{prefix}{name}:{}\r\n", fields.join(","));
        }
        out.push_str("\r\n");
    }
    // Redis ends the text with a single CRLF after the last section.
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

pub fn info(ctx: &mut Ctx) -> Outcome {
    let sections: Vec<String> = ctx.args[1..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let text = info_text(ctx, &sections);
    Reply::Verbatim(Bytes::from(text)).into()
}

#[cfg(test)]
mod tests {
    use super::cpu_section;

    #[test]
    fn cpu_section_has_redis_fields_with_measured_times() {
        // Burn a little CPU so the process's user time is visibly non-zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let mut out = String::new();
        cpu_section(&mut out);
        let fields: Vec<(&str, f64)> = out
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k, v.parse::<f64>().expect("seconds")))
            .collect();
        let names: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "used_cpu_sys",
                "used_cpu_user",
                "used_cpu_sys_children",
                "used_cpu_user_children",
                "used_cpu_sys_main_thread",
                "used_cpu_user_main_thread"
            ]
        );
        assert!(out.starts_with("# CPU\r\n") && out.ends_with("\r\n\r\n"));
        assert!(fields[1].1 > 0.0, "user time measured: {out}");
        assert!(fields[5].1 > 0.0 && fields[5].1 <= fields[1].1 + 0.01, "{out}");
    }
}
