//! The append-only file rebuilds what was logged: random command sessions (the fuzzers'
//! grammar — lists, strings, expiries, MULTI/EXEC, WATCH, blocking pops served by pushes,
//! FLUSHALL, SELECT, scripts) run with the log on, then a fresh broker loads the file, and
//! both keyspaces must be equal: every key, type, value, list order and expiry time. A third of
//! the sessions rewrite the log halfway, while commands carry on.

use broker::aof::{AofConfig, Fsync};
use broker::commands::persistence;
use broker::db::Value;
use broker::harness::grammar::Options;
use broker::harness::targets::{self, Session};
use broker::harness::{Harness, RngChoices};
use broker::BrokerConfig;
use bytes::Bytes;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Keys whose expiry falls this close to the comparison may expire between the two dumps.
const EXPIRY_MARGIN_MS: u64 = 60_000;

type Dump = BTreeMap<(usize, Vec<u8>), (String, Vec<Vec<u8>>, Option<u64>)>;

fn dump(shared: &Arc<broker::state::Shared>) -> Dump {
    let now = broker::metrics::unix_ms();
    let engine = shared.engine.lock();
    let mut out = Dump::new();
    for (db, d) in engine.keyspace.iter().enumerate() {
        for (key, value) in &d.map {
            let expiry = d.expiry_of(key);
            if expiry.is_some_and(|t| t <= now + EXPIRY_MARGIN_MS) {
                continue;
            }
            let (kind, items) = match value {
                Value::Str(s) => ("string", vec![s.to_vec()]),
                Value::List(l) => ("list", l.items.iter().map(<[u8]>::to_vec).collect()),
                Value::Hash(h) => {
                    let mut pairs: Vec<Vec<u8>> = h.iter().map(|(f, v)| [f, b"\0", v].concat()).collect();
                    pairs.sort();
                    ("hash", pairs)
                }
                Value::Set(s) => {
                    let mut members: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
                    members.sort();
                    ("set", members)
                }
                // Everything a stream holds, groups and pending entries included.
                Value::Stream(s) => (
                    "stream",
                    s.rebuild_commands(key)
                        .into_iter()
                        .flatten()
                        .map(|b| b.to_vec())
                        .collect(),
                ),
                // Member, then the score's exact bits: a replay must rebuild both.
                Value::ZSet(z) => (
                    "zset",
                    z.iter()
                        .flat_map(|(m, s)| [m.to_vec(), s.to_bits().to_be_bytes().to_vec()])
                        .collect(),
                ),
            };
            out.insert((db, key.to_vec()), (kind.to_string(), items, expiry));
        }
    }
    out
}

fn config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        aof: AofConfig {
            enabled: true,
            fsync: Fsync::No,
            dir: dir.to_path_buf(),
            ..AofConfig::default()
        },
        ..BrokerConfig::default()
    }
}

/// Runs the session; with `rewrite_at`, a rewrite starts before that step, so that the commands
/// after it reach the new file through the rewrite's copy.
fn run(h: &mut Harness, session: &Session, rewrite_at: Option<usize>) {
    for &resp3 in &session.resp3 {
        let id = h.connect();
        if resp3 {
            h.execute(id, &[Bytes::from_static(b"HELLO"), Bytes::from_static(b"3")]);
        }
    }
    if h.clients() == 0 {
        h.connect();
    }
    for (i, (pick, args)) in session.steps.iter().enumerate() {
        if rewrite_at == Some(i) {
            let mut engine = h.shared().engine.lock();
            let now = broker::metrics::unix_ms();
            let _ = persistence::start_rewrite(&mut engine, now);
        }
        let client = pick % h.clients();
        h.execute(client, args);
    }
    // The rewrite runs on its own thread: let it finish before the log is closed. One that a
    // transaction scheduled starts now (a running broker's background task would start it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Some(log) = h.shared().aof.read().clone() {
        if log
            .status
            .rewrite_scheduled
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let mut engine = h.shared().engine.lock();
            let _ = persistence::start_rewrite(&mut engine, broker::metrics::unix_ms());
        }
        if !log
            .status
            .rewrite_in_progress
            .load(std::sync::atomic::Ordering::Relaxed)
            && !log
                .status
                .rewrite_scheduled
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rewrite did not finish");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn check(name: &str, seed: u64, session: &Session, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let mut h = Harness::new(config(dir));
    persistence::open(h.shared()).expect("open the log");
    // Every third session rewrites the log halfway through.
    let rewrite_at = seed.is_multiple_of(3).then_some(session.steps.len() / 2);
    run(&mut h, session, rewrite_at);
    // A session may CONFIG SET appendonly: the property is about a log that stayed on.
    if h.shared().aof.read().is_none() {
        return;
    }
    let before = dump(h.shared());
    persistence::close(h.shared());
    let reloaded = Harness::new(config(dir));
    let report = persistence::open(reloaded.shared())
        .unwrap_or_else(|e| panic!("{name} seed {seed}: the log does not load: {e}\n{session}"));
    let after = dump(reloaded.shared());
    persistence::close(reloaded.shared());
    assert_eq!(report.map(|r| r.truncated_bytes), Some(0), "{name} seed {seed}");
    if before != after {
        let log = std::fs::read(dir.join("appendonly.aof")).unwrap_or_default();
        panic!(
            "{name} seed {seed}: the reloaded keyspace differs\nbefore: {before:?}\nafter:  {after:?}\nsession:\n{session}\nlog:\n{}",
            String::from_utf8_lossy(&log)
        );
    }
}

#[test]
fn a_reloaded_log_rebuilds_the_keyspace() {
    let dir = std::env::temp_dir().join(format!("aof-replay-{}", std::process::id()));
    for seed in 0..300u64 {
        let mut choices = RngChoices::new(rand::rngs::StdRng::seed_from_u64(seed));
        let session = targets::dispatch_session(&mut choices, 80, Options::default());
        check("dispatch", seed, &session, &dir);
    }
    for seed in 0..60u64 {
        let mut choices = RngChoices::new(rand::rngs::StdRng::seed_from_u64(1_000 + seed));
        let session = targets::lua_session(&mut choices, 20, Options::default());
        check("lua", seed, &session, &dir);
    }
    let _ = std::fs::remove_dir_all(dir);
}
