//! One client connection: read, parse, execute under the keyspace lock, batch replies, block.

use crate::commands::{dispatch, Outcome};
use crate::db::{Store, Waiter};
use crate::metrics::QueueEvent;
use crate::reply::Reply;
use crate::resp::{parse_request, Parsed};
use crate::state::{ClientInfo, ClientState, Shared};
use bytes::BytesMut;
use parking_lot::MutexGuard;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

const READ_CHUNK: usize = 16 * 1024;
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
    let (maxclients, needs_auth) = {
        let c = shared.config.read();
        (c.maxclients, c.requirepass.is_some())
    };
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
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
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
    {
        let mut store = shared.store.lock();
        crate::commands::unwatch_all(&mut store, &mut client);
    }
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
        waiter: u64,
        rx: oneshot::Receiver<Reply>,
        timeout: Option<Duration>,
        on_timeout: Reply,
    },
    Killed,
}

/// Executes every complete command in `inbuf`, holding the keyspace lock across the batch so
/// a pipeline costs one lock acquisition, and encodes the replies into `out`.
fn execute_batch(
    shared: &Shared,
    client: &mut ClientState,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
) -> Batch {
    let mut guard: Option<MutexGuard<'_, Store>> = None;
    let limits = shared.config.read().limits();
    loop {
        if client.info.killed.load(Relaxed) {
            return Batch::Killed;
        }
        match parse_request(inbuf, &limits, client.authenticated) {
            Ok(Parsed::Command(args)) if args.is_empty() => continue,
            Ok(Parsed::Command(args)) => {
                let store = guard.get_or_insert_with(|| shared.store.lock());
                match dispatch(shared, store, client, &args) {
                    Outcome::Reply(r) => r.encode(client.proto, out),
                    Outcome::Close(r) => {
                        r.encode(client.proto, out);
                        return Batch::Close;
                    }
                    Outcome::Block { keys, op, timeout } => {
                        let (tx, rx) = oneshot::channel();
                        // Redis 7 answers every blocking timeout, BLMOVE's included, with a null array.
                        let on_timeout = Reply::NullArray;
                        let waiter = Waiter {
                            client: client.id,
                            client_name: client.name.clone(),
                            db: client.db,
                            keys,
                            op,
                            tx,
                        };
                        let waiter = store.block(waiter);
                        client.info.blocked.store(true, Relaxed);
                        return Batch::Block {
                            waiter,
                            rx,
                            timeout,
                            on_timeout,
                        };
                    }
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
                Reply::error(format!("ERR {e}")).encode(client.proto, out);
                return Batch::Close;
            }
        }
    }
}

async fn run(
    shared: &Shared,
    stream: &mut TcpStream,
    client: &mut ClientState,
    shutdown: &CancellationToken,
) -> Exit {
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let batch = execute_batch(shared, client, &mut inbuf, &mut out);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return Exit::Eof;
            }
            out.clear();
        }
        match batch {
            Batch::Flush => continue,
            Batch::Close => return Exit::Eof,
            Batch::Killed => return Exit::Killed,
            Batch::Block {
                waiter,
                rx,
                timeout,
                on_timeout,
            } => {
                let reply = match wait_blocked(
                    shared, stream, client, &mut inbuf, shutdown, waiter, rx, timeout, on_timeout,
                )
                .await
                {
                    Ok(r) => r,
                    Err(exit) => return exit,
                };
                client.info.blocked.store(false, Relaxed);
                reply.encode(client.proto, &mut out);
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
        inbuf.reserve(READ_CHUNK);
        let idle = shared.config.read().timeout_s;
        tokio::select! {
            n = stream.read_buf(&mut inbuf) => match n {
                Ok(0) | Err(_) => return Exit::Eof,
                Ok(_) => *client.info.last_interaction.lock() = Instant::now(),
            },
            _ = client.info.kill.notified() => return Exit::Killed,
            _ = shutdown.cancelled() => return Exit::Shutdown,
            _ = idle_timer(idle) => return Exit::Eof,
        }
    }
}

async fn idle_timer(timeout_s: u64) {
    if timeout_s == 0 {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(Duration::from_secs(timeout_s)).await;
    }
}

/// Waits for a blocked command to be served, time out, or be cancelled by disconnect or kill.
/// Input that arrives meanwhile is buffered and runs after the blocked command, as in Redis.
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
) -> Result<Reply, Exit> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let cancel = |shared: &Shared| {
        let mut store = shared.store.lock();
        store.unblock(wid);
    };
    loop {
        inbuf.reserve(READ_CHUNK);
        tokio::select! {
            r = &mut rx => return Ok(r.unwrap_or(Reply::NullArray)),
            _ = &mut sleep => {
                let served_already = {
                    let mut store = shared.store.lock();
                    !store.unblock(wid)
                };
                if served_already {
                    // Served between the timer firing and taking the lock: deliver it.
                    return Ok(rx.try_recv().unwrap_or(on_timeout));
                }
                return Ok(on_timeout);
            }
            n = stream.read_buf(inbuf) => match n {
                Ok(0) | Err(_) => {
                    cancel(shared);
                    return Err(Exit::Eof);
                }
                Ok(_) => {
                    if inbuf.len() > shared.config.read().client_query_buffer_limit {
                        cancel(shared);
                        return Err(Exit::Eof);
                    }
                }
            },
            _ = client.info.kill.notified() => {
                cancel(shared);
                return Err(Exit::Killed);
            }
            _ = shutdown.cancelled() => {
                cancel(shared);
                return Err(Exit::Shutdown);
            }
        }
    }
}
