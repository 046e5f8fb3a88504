//! One client connection: read, parse, execute under the keyspace lock, batch replies, block.

use crate::commands::{dispatch, is_script_command, Outcome};
use crate::engine::Engine;
use crate::metrics::QueueEvent;
use crate::reply::{msg, Reply};
use crate::resp::{parse_request, Parsed};
use crate::state::{ClientInfo, ClientState, ScriptJob, Shared};
use bytes::{Bytes, BytesMut};
use parking_lot::MutexGuard;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Encodes a command's reply unless CLIENT REPLY silenced it, and moves CLIENT REPLY SKIP on
/// by one command.
fn emit(client: &mut ClientState, reply: &Reply, out: &mut BytesMut) {
    if !client.reply_mode.silent() {
        reply.encode(client.proto, out);
    }
    client.reply_mode = client.reply_mode.after_command();
}

/// Moves the messages pushed to this client (pub/sub, MONITOR) into its reply buffer.
fn take_pushed(client: &ClientState, out: &mut BytesMut) {
    let mailbox = &client.info.pubsub;
    if mailbox.has_pending() {
        mailbox.drain_into(client.proto, out);
    }
}

/// Writes `out`. For a client that receives pushed messages the bytes count towards its
/// output limit while they are written, and going over the limit ends the write (and the
/// connection) even if the client never reads.
async fn write_out(stream: &mut TcpStream, shared: &Shared, client: &ClientState, out: &[u8]) -> bool {
    let mailbox = &client.info.pubsub;
    let written = if !mailbox.subscribed() {
        stream.write_all(out).await.is_ok()
    } else {
        mailbox.set_writing(out.len());
        let written = tokio::select! {
            r = stream.write_all(out) => r.is_ok(),
            _ = mailbox.closed() => false,
        };
        mailbox.set_writing(0);
        written && !mailbox.is_closed()
    };
    if written {
        shared.stats.net_output_bytes.fetch_add(out.len() as u64, Relaxed);
        shared.stats.writes_processed.fetch_add(1, Relaxed);
    }
    written
}

/// How much a read asks the kernel for at once.
const READ_CHUNK: usize = 16 * 1024;
/// A reply buffer that grew past this during a burst is released after it is written, so a
/// connection that once received a large reply does not keep the memory while idle.
const OUT_KEEP: usize = 16 * 1024;

/// Reads what the socket has into `inbuf`, allocating the buffer only once data is there: an
/// idle connection holds no read buffer (Redis's idle client costs ~1.4 KB; a 16 KB buffer
/// reserved ahead of every read made ours cost 34 KB). Cancel-safe: the read itself happens
/// synchronously after readiness.
async fn read_more(stream: &TcpStream, shared: &Shared, inbuf: &mut BytesMut) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 {
            inbuf.reserve(READ_CHUNK);
        }
        match stream.try_read_buf(inbuf) {
            Ok(n) => {
                shared.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
                shared.stats.reads_processed.fetch_add(1, Relaxed);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Readiness can be stale (a new socket starts out "ready"): give the buffer
                // back before waiting for real input.
                if inbuf.is_empty() {
                    *inbuf = BytesMut::new();
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Gives back a reply buffer that grew during a burst. (The read buffer is released as soon as
/// a batch has consumed it: the next read allocates a fresh one, a ~50 ns malloc/free pair per
/// batch with mimalloc.)
fn release_idle_buffers(out: &mut BytesMut) {
    if out.is_empty() && out.capacity() > OUT_KEEP {
        *out = BytesMut::new();
    }
}
/// How long a connection waits for the keyspace lock before yielding to its event loop.
const LOCK_WAIT: Duration = Duration::from_micros(500);

/// Runs `f` on the keyspace from async code without blocking the event loop behind a long
/// script: the lock is tried briefly, and the task yields between tries.
pub(crate) async fn with_engine<R>(shared: &Shared, f: impl FnOnce(&mut Engine) -> R) -> R {
    loop {
        if let Some(mut engine) = shared.engine.try_lock_for(LOCK_WAIT) {
            return f(&mut engine);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Answers the buffered commands of a client while a script has been running past the busy
/// threshold: SCRIPT KILL (FUNCTION KILL for a function) and SHUTDOWN NOSAVE are honoured, the
/// rest is answered as Redis answers it during a busy script ([`crate::commands::answer_busy`]).
/// False when the connection must close (a protocol error, or the server stopping).
fn answer_busy(shared: &Shared, client: &mut ClientState, inbuf: &mut BytesMut, out: &mut BytesMut) -> bool {
    use crate::commands::shutdown::{decide, ShutdownOutcome};
    let limits = shared.config.read().limits();
    loop {
        match parse_request(inbuf, &limits, client.authenticated) {
            Ok(Parsed::Command(args)) if args.is_empty() => continue,
            Ok(Parsed::Command(args))
                if args[0].eq_ignore_ascii_case(b"shutdown") && client.authenticated =>
            {
                match decide(shared, &args[1..], true) {
                    ShutdownOutcome::Reply(r) => r.encode(client.proto, out),
                    ShutdownOutcome::Stop => return false,
                }
            }
            Ok(Parsed::Command(args))
                if !client.authenticated
                    && !args[0].eq_ignore_ascii_case(b"auth")
                    && !args[0].eq_ignore_ascii_case(b"hello") =>
            {
                Reply::error(msg::NOAUTH).encode(client.proto, out);
            }
            Ok(Parsed::Command(args)) => {
                let authenticated = client.authenticated;
                let kill_of = |family: &[u8]| {
                    args.len() == 2
                        && authenticated
                        && args[0].eq_ignore_ascii_case(family)
                        && args[1].eq_ignore_ascii_case(b"kill")
                };
                // SCRIPT KILL stops an EVAL, FUNCTION KILL a function; -BUSY names the one
                // that applies.
                let function = shared.script_monitor.function_running.load(Relaxed);
                let busy = if function { msg::BUSY_FUNCTION } else { msg::BUSY };
                if function
                    && authenticated
                    && args.len() == 2
                    && args[0].eq_ignore_ascii_case(b"function")
                    && args[1].eq_ignore_ascii_case(b"stats")
                {
                    crate::commands::function_stats(&shared.script_monitor).encode(client.proto, out);
                    continue;
                }
                let kill = kill_of(if function { b"function" } else { b"script" });
                let wrong_kill = kill_of(if function { b"script" } else { b"function" });
                let reply = if !kill && !wrong_kill {
                    crate::commands::answer_busy(shared, client, &args, busy)
                } else if shared.script_monitor.wrote.load(Relaxed) {
                    Reply::error(msg::UNKILLABLE)
                } else if !kill {
                    Reply::error(busy)
                } else {
                    shared.script_monitor.kill.store(true, Relaxed);
                    Reply::Ok
                };
                reply.encode(client.proto, out);
            }
            Ok(Parsed::Incomplete { .. }) => return true,
            Err(e) => {
                Reply::error(msg::err(e)).encode(client.proto, out);
                return false;
            }
        }
    }
}
/// Replies are written once this much has accumulated, even mid-pipeline.
const FLUSH_AT: usize = 64 * 1024;

/// Why a connection ended.
enum Exit {
    Eof,
    Killed,
    Shutdown,
}

/// Serves one accepted connection until the client leaves, is killed, or the server stops.
pub async fn serve_connection(shared: Arc<Shared>, mut stream: TcpStream, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let (addr, laddr) = match (stream.peer_addr(), stream.local_addr()) {
        (Ok(a), Ok(l)) => (a, l),
        _ => return,
    };
    let id = shared.next_client_id.fetch_add(1, Relaxed);
    let info = Arc::new(ClientInfo::new(id, addr, laddr));
    let (maxclients, needs_auth, denied) = {
        let c = shared.config.read();
        (c.maxclients, c.requirepass.is_some(), c.denies(&addr))
    };
    if denied {
        let _ = stream.write_all(format!("-{}\r\n", msg::DENIED).as_bytes()).await;
        return;
    }
    let admitted = {
        let mut clients = shared.clients.lock();
        let ok = clients.len() < maxclients;
        if ok {
            clients.insert(id, info.clone());
        }
        ok
    };
    if !admitted {
        shared.stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(format!("-{}\r\n", msg::MAX_CLIENTS).as_bytes())
            .await;
        return;
    }
    shared.stats.total_connections.fetch_add(1, Relaxed);
    shared.queues.emit(|| QueueEvent::Connected {
        client: id,
        addr: addr.to_string(),
    });
    let mut client = ClientState::new(info.clone(), !needs_auth);
    let exit = run(&shared, &mut stream, &mut client, &shutdown).await;
    tracing::debug!(
        client = id,
        reason = match exit {
            Exit::Eof => "eof",
            Exit::Killed => "killed",
            Exit::Shutdown => "shutdown",
        },
        "connection closed"
    );
    with_engine(&shared, |engine| {
        crate::commands::unwatch_all(engine, &mut client);
        engine.pubsub.remove_client(&client.info.pubsub);
    })
    .await;
    shared.clients.lock().remove(&id);
    let name = client.name.clone();
    shared
        .queues
        .emit(|| QueueEvent::Disconnected { client: id, name });
}

/// How a batch of buffered commands ended.
enum Batch {
    /// No complete command left in the buffer.
    NeedInput,
    /// Replies piled up mid-pipeline: write them, then carry on with the buffered input.
    Flush,
    /// QUIT or a protocol error: write the replies, then close.
    Close,
    /// A command blocked: write the replies, then wait for it.
    Block {
        /// The blocked command, for the slow log once it is served.
        args: Vec<Bytes>,
        waiter: u64,
        rx: oneshot::Receiver<Reply>,
        timeout: Option<Duration>,
        on_timeout: Reply,
    },
    Killed,
    /// A script command: run it on a blocking thread so that this event loop keeps serving
    /// other clients (with -BUSY past the threshold, and SCRIPT KILL).
    Script(Vec<Vec<Bytes>>),
    /// The keyspace lock is held elsewhere (a running script): nothing was consumed.
    Contended,
}

/// Executes every complete command in `inbuf`, holding the keyspace lock across the batch so
/// a pipeline costs one lock acquisition, and encodes the replies into `out`.
fn execute_batch(
    shared: &Shared,
    client: &mut ClientState,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
) -> Batch {
    let mut guard: Option<MutexGuard<'_, Engine>> = None;
    let limits = shared.config.read().limits();
    loop {
        if client.info.killed.load(Relaxed) {
            return Batch::Killed;
        }
        if guard.is_none() {
            // Never block the event loop behind a long script: wait briefly, then report.
            match shared.engine.try_lock_for(LOCK_WAIT) {
                Some(g) => guard = Some(g),
                None => return Batch::Contended,
            }
        }
        let Some(engine) = guard.as_mut() else {
            return Batch::Contended;
        };
        match parse_request(inbuf, &limits, client.authenticated) {
            Ok(Parsed::Command(args)) if args.is_empty() => continue,
            Ok(Parsed::Command(args)) if client.multi.is_none() && is_script_command(&args[0]) => {
                // Tried right here, under the lock, like any command: a script with a record
                // of finishing fast runs (saving two thread hand-offs, which dominate a short
                // script like an enqueue); any other, or one that overruns its budget before
                // writing, comes back as a migration and goes to the script thread below.
                let monitor = &shared.script_monitor;
                monitor.inline.store(true, Relaxed);
                let outcome = dispatch(shared, engine, client, &args);
                monitor.inline.store(false, Relaxed);
                match outcome {
                    Outcome::Migrate => {}
                    Outcome::Close(r) => {
                        emit(client, &r, out);
                        return Batch::Close;
                    }
                    done => {
                        take_pushed(client, out);
                        emit(client, &done.into_reply(), out);
                        if out.len() >= FLUSH_AT {
                            return Batch::Flush;
                        }
                        continue;
                    }
                }
                // Consecutive pipelined script commands travel to the script thread together.
                let mut scripts = vec![args];
                while scripts.len() < 64
                    && crate::resp::peek_command_name(inbuf).is_some_and(is_script_command)
                {
                    match parse_request(inbuf, &limits, client.authenticated) {
                        Ok(Parsed::Command(next)) if !next.is_empty() => scripts.push(next),
                        // Incomplete: it stays in the buffer for the next batch.
                        Ok(_) => break,
                        // A malformed request is answered by the next batch, after these.
                        Err(_) => break,
                    }
                }
                return Batch::Script(scripts);
            }
            Ok(Parsed::Command(args)) => {
                let outcome = dispatch(shared, engine, client, &args);
                // Messages the command published to this client itself come before its reply.
                take_pushed(client, out);
                match outcome {
                    Outcome::Reply(r) => emit(client, &r, out),
                    Outcome::Close(r) => {
                        emit(client, &r, out);
                        return Batch::Close;
                    }
                    Outcome::Block { keys, op, timeout } => {
                        // Redis 7 answers every blocking timeout, BLMOVE's included, with a null
                        // array; WAIT with the replicas that acknowledged (none).
                        let on_timeout = match op {
                            crate::engine::BlockOp::Wait => Reply::Int(0),
                            _ => Reply::NullArray,
                        };
                        let (waiter, rx) = client.block(engine, keys, op);
                        return Batch::Block {
                            args,
                            waiter,
                            rx,
                            timeout,
                            on_timeout,
                        };
                    }
                    // Only a script command tried inline (above) moves.
                    moved @ Outcome::Migrate => emit(client, &moved.into_reply(), out),
                }
                if out.len() >= FLUSH_AT {
                    return Batch::Flush;
                }
            }
            Ok(Parsed::Incomplete { hint }) => {
                if hint > inbuf.capacity() {
                    inbuf.reserve(hint - inbuf.len());
                }
                return Batch::NeedInput;
            }
            Err(e) => {
                Reply::error(msg::err(e)).encode(client.proto, out);
                return Batch::Close;
            }
        }
    }
}

async fn run(
    shared: &Arc<Shared>,
    stream: &mut TcpStream,
    client: &mut ClientState,
    shutdown: &CancellationToken,
) -> Exit {
    let mut inbuf = BytesMut::new();
    let mut out = BytesMut::new();
    loop {
        // CLIENT LIST's qbuf: the batch being executed, then what is left unparsed.
        let info = &client.info;
        info.qbuf.store(inbuf.len(), Relaxed);
        info.qbuf_free.store(inbuf.capacity() - inbuf.len(), Relaxed);
        let batch = execute_batch(shared, client, &mut inbuf, &mut out);
        client.info.qbuf.store(inbuf.len(), Relaxed);
        if inbuf.is_empty() && inbuf.capacity() > 0 {
            // Before the yield below: thousands of connections answered in one burst must not
            // each hold a read buffer at the same time.
            inbuf = BytesMut::new();
        }
        if !out.is_empty() {
            if matches!(batch, Batch::NeedInput) {
                // Let the other connections with input run first, then write: replies leave in
                // a burst, as Redis writes them all before it sleeps, so a client that is
                // already awake reads several instead of being woken for each (at 16-deep
                // pipelines this halves the kernel time per request).
                tokio::task::yield_now().await;
            }
            if client.aof_wait > 0 {
                wait_durable(shared, client).await;
            }
            take_pushed(client, &mut out);
            if !write_out(stream, shared, client, &out).await {
                return Exit::Eof;
            }
            out.clear();
        }
        match batch {
            Batch::Flush => continue,
            Batch::Close => return Exit::Eof,
            Batch::Killed => return Exit::Killed,
            Batch::Block {
                args,
                waiter,
                rx,
                timeout,
                on_timeout,
            } => {
                release_idle_buffers(&mut out);
                let (reply, served) = match wait_blocked(
                    shared, stream, client, &mut inbuf, shutdown, waiter, rx, timeout, on_timeout,
                )
                .await
                {
                    Ok(r) => r,
                    Err(exit) => return exit,
                };
                client.info.blocked.store(false, Relaxed);
                // Served with data (not timed out, unblocked or refused): the slow log hears of
                // it now, as Redis reports a blocking command once it is served.
                if served && !matches!(reply, Reply::NullArray | Reply::Error(_)) {
                    log_served(shared, client, &args).await;
                }
                // Whoever served it logged the pop: the reply waits for that to be durable.
                if let Some(log) = shared.aof.read().as_ref() {
                    client.aof_wait = log.appended();
                }
                emit(client, &reply, &mut out);
                continue;
            }
            Batch::Script(commands) => {
                // Scripts not known to be short (or stopped inline for overrunning their budget
                // before writing) run on the script thread, with the script commands after them.
                let placeholder = ClientState::new(client.info.clone(), client.authenticated);
                let owned = std::mem::replace(client, placeholder);
                let (tx, rx) = oneshot::channel();
                if !crate::script_thread::submit(
                    shared,
                    ScriptJob {
                        commands,
                        client: owned,
                        reply: tx,
                    },
                ) {
                    return Exit::Eof;
                }
                match rx.await {
                    Ok((back, replies)) => {
                        *client = back;
                        for reply in replies {
                            emit(client, &reply, &mut out);
                        }
                    }
                    Err(_) => {
                        tracing::error!("the script thread dropped a job");
                        return Exit::Eof;
                    }
                }
                continue;
            }
            Batch::Contended => {
                let threshold = shared.config.read().busy_reply_threshold_ms;
                if shared.script_monitor.running_for_ms() >= threshold {
                    if !answer_busy(shared, client, &mut inbuf, &mut out) {
                        let _ = stream.write_all(&out).await;
                        return Exit::Eof;
                    }
                    if !out.is_empty() {
                        if stream.write_all(&out).await.is_err() {
                            return Exit::Eof;
                        }
                        out.clear();
                    }
                    // Keep reading (more commands get -BUSY) until the lock frees up.
                    tokio::select! {
                        n = read_more(stream, shared, &mut inbuf) => if matches!(n, Ok(0) | Err(_)) { return Exit::Eof },
                        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                        _ = client.info.kill.notified() => return Exit::Killed,
                        _ = shutdown.cancelled() => return Exit::Shutdown,
                    }
                } else {
                    // Held by a short script most likely: wait for it to finish (or 1 ms).
                    let done = shared.script_monitor.done.notified();
                    tokio::select! {
                        _ = done => {}
                        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                    }
                }
                continue;
            }
            Batch::NeedInput => {}
        }
        if inbuf.len() > shared.config.read().client_query_buffer_limit {
            tracing::warn!(
                client = client.id,
                "closing client that exceeded the query buffer limit"
            );
            return Exit::Eof;
        }
        release_idle_buffers(&mut out);
        let idle = shared.config.read().timeout_s;
        tokio::select! {
            n = read_more(stream, shared, &mut inbuf) => match n {
                Ok(0) | Err(_) => return Exit::Eof,
                Ok(_) => *client.info.last_interaction.lock() = Instant::now(),
            },
            _ = client.info.kill.notified() => return Exit::Killed,
            _ = shutdown.cancelled() => return Exit::Shutdown,
            _ = idle_timer(idle) => return Exit::Eof,
            _ = client.info.pubsub.wait() => {
                if client.info.pubsub.is_closed() {
                    return Exit::Killed;
                }
                take_pushed(client, &mut out);
                if !write_out(stream, shared, client, &out).await {
                    return Exit::Eof;
                }
                out.clear();
            }
        }
    }
}

/// Holds a client's replies until the append-only file is durable (as `appendfsync` defines
/// it) up to the client's last write.
async fn wait_durable(shared: &Shared, client: &mut ClientState) {
    let offset = std::mem::take(&mut client.aof_wait);
    let log = shared.aof.read().clone();
    if let Some(log) = log {
        log.wait_durable(offset).await;
    }
}

async fn idle_timer(timeout_s: u64) {
    if timeout_s == 0 {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(Duration::from_secs(timeout_s)).await;
    }
}

/// Adds a served blocking command to the slow log if the call that blocked took long enough.
async fn log_served(shared: &Shared, client: &ClientState, args: &[Bytes]) {
    let usec = client.blocked_call_us;
    with_engine(shared, |engine| {
        if engine.slowlog.wants(usec) {
            let unix_s = crate::metrics::unix_us() / 1_000_000;
            let name = client.name.clone().unwrap_or_default();
            engine
                .slowlog
                .push(unix_s, usec, args, client.info.addr.to_string(), name);
        }
    })
    .await;
}

/// Waits for a blocked command to be served, time out, or be cancelled by disconnect or kill;
/// the reply, and whether it came through the waiter's channel (served or CLIENT UNBLOCK)
/// rather than from the timeout. Input that arrives meanwhile is buffered and runs after the
/// blocked command, as in Redis.
#[allow(clippy::too_many_arguments)]
async fn wait_blocked(
    shared: &Shared,
    stream: &mut TcpStream,
    client: &mut ClientState,
    inbuf: &mut BytesMut,
    shutdown: &CancellationToken,
    wid: u64,
    mut rx: oneshot::Receiver<Reply>,
    timeout: Option<Duration>,
    on_timeout: Reply,
) -> Result<(Reply, bool), Exit> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            r = &mut rx => return Ok(match r {
                Ok(reply) => (reply, true),
                Err(_) => (Reply::NullArray, false),
            }),
            _ = &mut sleep => {
                let served_already = !with_engine(shared, |engine| engine.unblock(wid)).await;
                if served_already {
                    // Served between the timer firing and taking the lock: deliver it.
                    return Ok(match rx.try_recv() {
                        Ok(reply) => (reply, true),
                        Err(_) => (on_timeout, false),
                    });
                }
                return Ok((on_timeout, false));
            }
            n = read_more(stream, shared, inbuf) => match n {
                Ok(0) | Err(_) => {
                    with_engine(shared, |engine| engine.unblock(wid)).await;
                    return Err(Exit::Eof);
                }
                Ok(_) => {
                    if inbuf.len() > shared.config.read().client_query_buffer_limit {
                        with_engine(shared, |engine| engine.unblock(wid)).await;
                        return Err(Exit::Eof);
                    }
                }
            },
            _ = client.info.kill.notified() => {
                with_engine(shared, |engine| engine.unblock(wid)).await;
                return Err(Exit::Killed);
            }
            _ = client.info.pubsub.wait() => {
                // A RESP3 client may be subscribed while it blocks: its messages go out now.
                let mut pushed = BytesMut::new();
                take_pushed(client, &mut pushed);
                if client.info.pubsub.is_closed() || !write_out(stream, shared, client, &pushed).await {
                    with_engine(shared, |engine| engine.unblock(wid)).await;
                    return Err(Exit::Killed);
                }
            }
            _ = shutdown.cancelled() => {
                with_engine(shared, |engine| engine.unblock(wid)).await;
                return Err(Exit::Shutdown);
            }
        }
    }
}
#[cfg(test)]
mod size_probe {
    #[tokio::test]
    async fn future_size() {
        let shared = crate::state::Shared::new(crate::state::BrokerConfig::default());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let f = super::serve_connection(shared.clone(), c, tokio_util::sync::CancellationToken::new());
        eprintln!("serve_connection future: {} bytes", std::mem::size_of_val(&f));
        eprintln!(
            "ClientState: {}",
            std::mem::size_of::<crate::state::ClientState>()
        );
        eprintln!("ClientInfo: {}", std::mem::size_of::<crate::state::ClientInfo>());
    }
}
