//! HTTP for the farm: the OpenFaaS of-watchdog endpoint of a function, and the hardened server
//! every HTTP endpoint of the project runs on (axum on hyper, on the tokio runtime).
//!
//! `GET /_/health` answers 200 once the function is connected to the broker (503 before), and
//! `POST /` accepts the original's invocation payload. A function always starts its loop from
//! its flags at process start, so the invocation is optional: it is acknowledged with the
//! running state (202 the first time, 200 after) and its JSON must parse (else 400). The
//! watchdog proxies one request per connection; keep-alive is honoured all the same. The node's
//! own endpoint (`/metrics`, the dashboard, the probes) is served by [`serve`] as well.

mod deadlines;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest request body we accept (the invocation payload is small).
const MAX_BODY: usize = 1024 * 1024;
/// Largest request head (request line and headers together): hyper answers 431 beyond it.
const MAX_HEAD: usize = 64 * 1024;
/// Most headers a request may carry: hyper answers 431 beyond it.
const MAX_HEADERS: usize = 100;
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// What the endpoint reports; the function loop updates it.
#[derive(Debug, Default)]
pub struct HealthState {
    /// Set once the broker connection is up.
    pub connected: AtomicBool,
    /// Invocations received on `POST /`.
    pub invocations: AtomicU64,
    pub role: String,
}

impl HealthState {
    pub fn new(role: &str) -> Arc<HealthState> {
        Arc::new(HealthState {
            role: role.to_string(),
            ..HealthState::default()
        })
    }
}

/// Serves the function endpoint on `listener` until `cancel`.
pub async fn serve_http(listener: TcpListener, state: Arc<HealthState>, cancel: CancellationToken) {
    serve(listener, function_router(state), cancel).await
}

/// The watchdog's routes. Every request goes to [`route`], the endpoint's behaviour free of
/// I/O (unit-tested below); axum supplies the HTTP around it.
pub fn function_router(state: Arc<HealthState>) -> Router {
    async fn answer(
        State(state): State<Arc<HealthState>>,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> Response {
        let (status, text) = route(method.as_str(), uri.path(), &body, &state);
        json(status, text)
    }
    Router::new().fallback(answer).with_state(state)
}

/// A JSON response with `status` (an unknown code becomes 500).
pub fn json(status: u16, body: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// Serves `app` on `listener` until `cancel`, with the limits of a server facing careless or
/// hostile clients: request heads up to 64 KiB and 100 headers (431 beyond), bodies up to
/// 1 MiB (413, refused from the `Content-Length` before any route runs), 10 s for a request to
/// arrive once it began (408), idle keep-alive connections closed after 60 s, stalled writes
/// dropped, at most 256 connections at once. Handlers see the client's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, app: Router, cancel: CancellationToken) {
    let app = app
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(refuse_large_bodies));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = cancel.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors most likely: wait instead of spinning.
                    tracing::debug!(error = %e, "http accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let (app, cancel) = (app.clone(), cancel.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), request)
                });
            let io = hyper_util::rt::TokioIo::new(deadlines::Deadlines::new(stream));
            let connection = hyper::server::conn::http1::Builder::new()
                // The first bounds a head still arriving, the second one read whole at once.
                .max_buf_size(MAX_HEAD)
                .max_header_size(MAX_HEAD)
                .max_headers(MAX_HEADERS)
                // hyper's own head timeout closes without a word and also runs while the
                // connection is idle; `Deadlines` answers 408 and keeps the two apart.
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(None)
                .serve_connection(io, service);
            tokio::select! {
                r = connection => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "http connection ended");
                    }
                }
                _ = cancel.cancelled() => {}
            }
            drop(permit);
        });
    }
}

/// Answers 413 to a request that announces a body over [`MAX_BODY`], before routing: no
/// handler (not even a 404 or 405) waits for a body it will not read. Bodies without a length
/// (chunked) are cut at the same size by `DefaultBodyLimit` when a handler reads them.
async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>().unwrap_or(u64::MAX));
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        let mut response = json(413, r#"{"error":"payload too large"}"#);
        // Its body stays unread: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// The endpoint's behaviour, free of I/O.
fn route(method: &str, path: &str, body: &[u8], state: &HealthState) -> (u16, String) {
    let connected = state.connected.load(Ordering::Relaxed);
    match (method, path) {
        ("GET", "/_/health") | ("GET", "/healthz") => {
            if connected {
                (200, "{\"status\":\"ok\"}".into())
            } else {
                (503, "{\"status\":\"connecting to the broker\"}".into())
            }
        }
        ("POST", "/") => {
            if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(body).is_err() {
                return (400, "{\"error\":\"the invocation payload is not JSON\"}".into());
            }
            let n = state.invocations.fetch_add(1, Ordering::Relaxed);
            let status = if n == 0 { 202 } else { 200 };
            (
                status,
                serde_json::json!({"status": "running", "role": state.role, "connected": connected})
                    .to_string(),
            )
        }
        (_, "/") | (_, "/_/health") => (405, "{\"error\":\"method not allowed\"}".into()),
        _ => (404, "{\"error\":\"not found\"}".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_connection() {
        let s = HealthState::new("worker");
        assert_eq!(route("GET", "/_/health", b"", &s).0, 503);
        s.connected.store(true, Ordering::Relaxed);
        assert_eq!(route("GET", "/_/health", b"", &s).0, 200);
    }

    #[test]
    fn invocation_is_acknowledged_once_then_reported() {
        let s = HealthState::new("worker");
        assert_eq!(route("POST", "/", br#"{"program_start_time": 1.0}"#, &s).0, 202);
        assert_eq!(route("POST", "/", b"", &s).0, 200);
        assert_eq!(route("POST", "/", b"not json", &s).0, 400);
        assert_eq!(route("GET", "/nope", b"", &s).0, 404);
        assert_eq!(route("DELETE", "/", b"", &s).0, 405);
    }
}

/// The server's limits, over real sockets on loopback (time paused: the deadlines pass at
/// once when nothing else can happen).
#[cfg(test)]
mod server_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start() -> (std::net::SocketAddr, Arc<HealthState>, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, cancel) = (HealthState::new("worker"), CancellationToken::new());
        tokio::spawn(serve_http(listener, state.clone(), cancel.clone()));
        (addr, state, cancel)
    }

    /// Everything the server sends until it closes the connection.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = stream.read_to_end(&mut out);
        match tokio::time::timeout(std::time::Duration::from_secs(120), read).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => panic!(
                "the connection was never closed: {}",
                String::from_utf8_lossy(&out)
            ),
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        read_to_close(&mut stream).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_does_not_arrive_in_time_gets_408() {
        let (addr, _, _) = start().await;
        // A head that never ends.
        let sent = tokio::time::Instant::now();
        let reply = exchange(addr, b"GET /_/health HTTP/1.1\r\nHost: x\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
        assert!(sent.elapsed() >= deadlines::REQUEST_TIMEOUT);
        assert!(reply.ends_with("{\"error\":\"request timeout\"}"), "{reply}");
        // A body shorter than announced.
        let reply = exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_serves_several_requests_then_an_idle_connection_is_closed() {
        let (addr, state, _) = start().await;
        state.connected.store(true, Ordering::Relaxed);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n";
        stream.write_all(request).await.unwrap();
        stream.write_all(request).await.unwrap();
        let sent = tokio::time::Instant::now();
        // Both answered on the one connection, which then stays open until it idles out.
        let replies = read_to_close(&mut stream).await;
        assert_eq!(replies.matches("HTTP/1.1 200 OK").count(), 2, "{replies}");
        assert!(sent.elapsed() >= deadlines::IDLE_TIMEOUT, "closed early");
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_256_connections_are_served_at_once() {
        let (addr, state, _) = start().await;
        state.connected.store(true, Ordering::Relaxed);
        let request = b"GET /_/health HTTP/1.1\r\nConnection: close\r\n\r\n";
        let start = tokio::time::Instant::now();
        assert!(exchange(addr, request).await.starts_with("HTTP/1.1 200 "));
        assert!(start.elapsed() < deadlines::IDLE_TIMEOUT);
        // 256 quiet connections take every slot: the next request waits until they idle out.
        let mut quiet = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            quiet.push(TcpStream::connect(addr).await.unwrap());
        }
        let start = tokio::time::Instant::now();
        assert!(exchange(addr, request).await.starts_with("HTTP/1.1 200 "));
        assert!(start.elapsed() >= deadlines::IDLE_TIMEOUT);
    }

    #[tokio::test]
    async fn oversized_heads_and_bodies_are_refused_and_the_server_carries_on() {
        let (addr, state, _) = start().await;
        let huge = format!(
            "GET /_/health HTTP/1.1\r\nX-Junk: {}\r\n\r\n",
            "a".repeat(100_000)
        );
        let reply = exchange(addr, huge.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70_000));
        assert!(exchange(addr, long_line.as_bytes())
            .await
            .starts_with("HTTP/1.1 431 "));
        let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
        let reply = exchange(addr, format!("GET /_/health HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
        // The body is refused from its announced length, before anything reads it.
        let reply = exchange(addr, b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
        // A chunked body is cut at the same size when the handler reads it.
        let chunk = "a".repeat(600_000);
        let chunked = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len(),
            chunk.len()
        );
        let reply = exchange(addr, chunked.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
        assert_eq!(state.invocations.load(Ordering::Relaxed), 0);
        // 100 headers are fine, and so is the invocation.
        let ok: String = (0..98).map(|i| format!("X-H{i}: v\r\n")).collect();
        let reply = exchange(
            addr,
            format!("POST / HTTP/1.1\r\n{ok}Connection: close\r\nContent-Length: 2\r\n\r\n{{}}").as_bytes(),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 202 "), "{reply}");
    }
}
