//! Seeded fuzzing over real TCP: generated command sessions (and damaged frames) sent by up to
//! three concurrent connections to a broker serving on a loopback port, cut into random
//! writes. Whatever they do, each connection must get only well-formed replies and the
//! server must still answer `PING` afterwards. This covers what the in-process targets skip:
//! the connection loop (buffering, pipelining, blocking with pending input, protocol errors
//! that close the connection).
//!
//! `FUZZ_SEED`, `FUZZ_CASES` and `FUZZ_MEMORY_LIMIT_MB` work as in `fuzz_seeded.rs`: the
//! broker serves in the test's own process, so the test runs in a child process whose address
//! space is capped, and a runaway allocation fails it with a report naming the session.

use broker::harness::containers;
use broker::harness::grammar::Options;
use broker::harness::targets::{self, ParserCase};
use broker::harness::{contained, count_replies, Choices, RngChoices};
use broker::reply::Protocol;
use broker::{Broker, BrokerConfig};
use bytes::Bytes;
use rand::SeedableRng;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on one session (every connection written, read to EOF).
const SESSION_TIMEOUT: Duration = Duration::from_secs(20);

/// The fuzzing process's address-space cap (see `fuzz_seeded.rs`).
const MEMORY_LIMIT_MB: u64 = 4096;

fn multibulk(args: &[Bytes], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Commands that would stop the server from serving the next session are left out:
/// `CONFIG SET` (a password, `maxclients 0`, a one-second idle timeout) — the in-process
/// targets run it and restore the configuration instead — except of the parameters that
/// cannot (keyspace events, encoding thresholds), and `SHUTDOWN`, which stops the server as
/// asked (tests/scripting.rs covers it).
fn allowed(args: &[Bytes]) -> bool {
    let config_set = args.len() >= 2
        && args[0].eq_ignore_ascii_case(b"config")
        && args[1].eq_ignore_ascii_case(b"set")
        && !containers::is_harmless_config_set(args);
    let shutdown = args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"shutdown"));
    !(config_set || shutdown)
}

/// Whether parser bytes may be spliced into a session: they hold generated commands too, and
/// a damaged frame can still leave a whole `SHUTDOWN` or `CONFIG SET` after it (the parser,
/// as Redis's, skips the two bytes after a bulk string without looking at them), which
/// [`allowed`] cannot see.
fn splice_allowed(bytes: &[u8]) -> bool {
    let lower = bytes.to_ascii_lowercase();
    !lower.windows(8).any(|w| w == b"shutdown") && !lower.windows(6).any(|w| w == b"config")
}

/// What one connection sends, and the offsets where its writes are cut.
type Stream = (Vec<u8>, Vec<usize>);

/// One connection's bytes: a session's commands as multibulk frames, in one session out of
/// five with a parser input (damaged frames, inline lines) at some point; where to cut them
/// into writes; and how many commands that is.
fn streams(c: &mut impl Choices) -> (Vec<Stream>, usize) {
    let session = if c.chance(50) {
        targets::dispatch_session(c, 30, Options::default())
    } else {
        targets::lua_session(c, 10, Options::default())
    };
    let n = session.resp3.len().max(1);
    let mut bytes: Vec<Vec<u8>> = session
        .resp3
        .iter()
        .map(|&resp3| {
            if resp3 {
                b"HELLO 3\r\n".to_vec()
            } else {
                Vec::new()
            }
        })
        .collect();
    let damage_at = if c.chance(20) {
        c.below(session.steps.len() + 1)
    } else {
        usize::MAX
    };
    let mut commands = 0;
    for (i, (pick, args)) in session.steps.iter().enumerate().filter(|(_, (_, a))| allowed(a)) {
        let out = &mut bytes[pick % n];
        if i == damage_at {
            let damaged = ParserCase::structured(c).bytes;
            if splice_allowed(&damaged) {
                out.extend(damaged);
            }
        }
        multibulk(args, out);
        commands += 1;
    }
    let streams = bytes
        .into_iter()
        .map(|b| {
            let mut cuts: Vec<usize> = (0..c.below(6)).map(|_| c.below(b.len() + 1)).collect();
            cuts.sort_unstable();
            (b, cuts)
        })
        .collect();
    (streams, commands)
}

/// The value of each parameter sessions may change, as the server starts with it.
async fn harmless_defaults(port: u16) -> Vec<(&'static str, Vec<u8>)> {
    let mut defaults = Vec::new();
    for param in containers::harmless_params() {
        let mut get = Vec::new();
        multibulk(
            &[
                Bytes::from_static(b"CONFIG"),
                Bytes::from_static(b"GET"),
                Bytes::from(param),
            ],
            &mut get,
        );
        let reply = tokio::time::timeout(SESSION_TIMEOUT, converse(port, get, Vec::new()))
            .await
            .expect("CONFIG GET timed out")
            .expect("connect");
        // `*2 $n name $m value`: the value is the last bulk string.
        let text = reply.strip_suffix(b"\r\n").unwrap_or(&reply);
        let start = text.windows(2).rposition(|w| w == b"\r\n").map_or(0, |i| i + 2);
        defaults.push((param, text[start..].to_vec()));
    }
    defaults
}

/// What each session starts from: an empty keyspace, no libraries or cached scripts, and the
/// parameters sessions may change at their defaults — so that memory does not pile up over a
/// long run (a session may leave a 512 MB string) and session `i` replays alone with
/// `FUZZ_SEED=<base + i> FUZZ_CASES=1`.
async fn reset(port: u16, defaults: &[(&'static str, Vec<u8>)]) {
    let mut bytes = Vec::new();
    let mut commands: Vec<Vec<Bytes>> = [&["FLUSHALL"][..], &["FUNCTION", "FLUSH"], &["SCRIPT", "FLUSH"]]
        .iter()
        .map(|c| c.iter().map(|w| Bytes::from_static(w.as_bytes())).collect())
        .collect();
    for (param, value) in defaults {
        let set = [Bytes::from_static(b"CONFIG"), Bytes::from_static(b"SET")];
        commands.push([&set[..], &[Bytes::from(*param), Bytes::from(value.clone())]].concat());
    }
    for c in &commands {
        multibulk(c, &mut bytes);
    }
    let replies = tokio::time::timeout(SESSION_TIMEOUT, converse(port, bytes, Vec::new()))
        .await
        .expect("reset timed out")
        .expect("connect");
    let ok = b"+OK\r\n".repeat(commands.len());
    assert_eq!(
        String::from_utf8_lossy(&replies),
        String::from_utf8_lossy(&ok),
        "resetting the server between sessions"
    );
}

/// Writes one connection's bytes in pieces while reading its replies, then reads to EOF.
async fn converse(port: u16, bytes: Vec<u8>, cuts: Vec<usize>) -> std::io::Result<Vec<u8>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut last = 0;
        for cut in cuts.into_iter().chain(std::iter::once(bytes.len())) {
            // The server may close first (QUIT, a protocol error, CLIENT KILL): stop writing.
            if wr.write_all(&bytes[last..cut]).await.is_err() {
                return;
            }
            last = cut;
            tokio::task::yield_now().await;
        }
        // EOF ends a block that nothing will serve, and then the connection.
        let _ = wr.shutdown().await;
    });
    let mut replies = Vec::new();
    // A reset (the server closing with input unread) still leaves what was read.
    let _ = rd.read_to_end(&mut replies).await;
    let _ = writer.await;
    Ok(replies)
}

#[test]
fn wire() {
    let limit_mb = std::env::var("FUZZ_MEMORY_LIMIT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MEMORY_LIMIT_MB);
    let child = std::env::var_os(contained::CHILD_ENV).is_some();
    if child {
        if let Err(e) = contained::cap_address_space(limit_mb) {
            panic!("{e}");
        }
    } else if limit_mb > 0 {
        let run = contained::run_test_in_child("wire", &[])
            .unwrap_or_else(|e| panic!("wire: could not start the fuzzing process: {e}"));
        if let Err(report) = run.verdict("wire", limit_mb) {
            panic!("{report}");
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(sessions(child));
}

/// The sessions against one server; `announce`: print each session's name first, for the
/// parent process's report.
async fn sessions(announce: bool) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(Broker::new(BrokerConfig::default()).serve(listener, async {
        let _ = stop_rx.await;
    }));
    let base: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let cases: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut sent_commands, mut replies_read) = (0, 0);
    let defaults = harmless_defaults(port).await;
    for i in 0..cases {
        reset(port, &defaults).await;
        if announce {
            contained::mark_input(&format!("wire session {i} (FUZZ_SEED={base})"));
        }
        let mut c = RngChoices::new(rand::rngs::StdRng::seed_from_u64(base.wrapping_add(i)));
        let (conns, commands) = streams(&mut c);
        sent_commands += commands;
        let sent: Vec<Vec<u8>> = conns.iter().map(|(b, _)| b.clone()).collect();
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|(b, cuts)| tokio::spawn(converse(port, b, cuts)))
            .collect();
        let all = async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        };
        let results = tokio::time::timeout(SESSION_TIMEOUT, all)
            .await
            .unwrap_or_else(|_| panic!("session {i} (FUZZ_SEED={base}) hung"));
        for (k, r) in results.into_iter().enumerate() {
            let replies = r.expect("task").expect("connect");
            match count_replies(&replies, Protocol::Resp3) {
                Ok(n) => replies_read += n,
                Err(e) => panic!(
                    "session {i} (FUZZ_SEED={base}) connection {k}: {e}\nsent: {:?}\ngot: {:?}",
                    String::from_utf8_lossy(&sent[k]),
                    String::from_utf8_lossy(&replies)
                ),
            }
        }
        if server.is_finished() {
            let outcome = match server.await {
                Ok(Ok(())) => "returned".to_string(),
                Ok(Err(e)) => format!("failed: {e}"),
                Err(e) => format!("panicked: {e}"),
            };
            let sent: Vec<_> = sent.iter().map(|b| String::from_utf8_lossy(b)).collect();
            panic!("the server stopped during session {i} (FUZZ_SEED={base}): it {outcome}\nsent: {sent:?}");
        }
    }
    let peak = contained::peak_address_space_mb()
        .map_or(String::new(), |mb| format!("; peak address space {mb} MiB"));
    eprintln!("wire: {cases} sessions, {sent_commands} commands sent, {replies_read} replies read{peak}");
    // Blocks ended by EOF, QUIT, CLIENT KILL and protocol errors leave commands unanswered,
    // but most must have run: a run that mostly closed at once would test nothing.
    assert!(
        replies_read * 2 > sent_commands,
        "only {replies_read} replies to {sent_commands} commands"
    );
    // Still answering, on a fresh connection.
    let pong = tokio::time::timeout(
        SESSION_TIMEOUT,
        converse(port, b"*1\r\n$4\r\nPING\r\n".to_vec(), Vec::new()),
    )
    .await
    .expect("PING timed out")
    .expect("connect");
    assert_eq!(pong, b"+PONG\r\n");
    let _ = stop_tx.send(());
    tokio::time::timeout(SESSION_TIMEOUT, server)
        .await
        .expect("shutdown timed out")
        .expect("server task")
        .expect("serve");
}
