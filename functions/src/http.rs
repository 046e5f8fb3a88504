//! A minimal HTTP/1.1 endpoint for the OpenFaaS of-watchdog in `mode: http`.
//!
//! `GET /_/health` answers 200 once the function is connected to the broker (503 before), and
//! `POST /` accepts the original's invocation payload. A function always starts its loop from
//! its flags at process start, so the invocation is optional: it is acknowledged with the
//! running state (202 the first time, 200 after) and its JSON must parse (else 400). The
//! watchdog proxies one request per connection; we still honour keep-alive. The node's own
//! endpoint (`/metrics`, `/healthz`, `/readyz`) runs on the same small server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Largest request body we accept (the invocation payload is small).
const MAX_BODY: usize = 1024 * 1024;

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

/// One HTTP response: a body, or a stream of server-sent events.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Set: the body is `text/event-stream`, one event from this source every period, until
    /// the client goes away or the server stops.
    pub events: Option<EventSource>,
}

/// Where server-sent events come from: called once per period, it returns the event's data
/// (one line, e.g. JSON).
#[derive(Clone)]
pub struct EventSource {
    pub period: std::time::Duration,
    pub next: Arc<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSource")
            .field("period", &self.period)
            .finish()
    }
}

impl PartialEq for EventSource {
    fn eq(&self, other: &Self) -> bool {
        self.period == other.period && Arc::ptr_eq(&self.next, &other.next)
    }
}

impl Response {
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into(),
            events: None,
        }
    }

    /// A page or another text body of `content_type`.
    pub fn text(status: u16, content_type: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            events: None,
        }
    }

    /// Server-sent events from `source` (`text/event-stream`).
    pub fn events(source: EventSource) -> Response {
        Response {
            status: 200,
            content_type: "text/event-stream",
            body: String::new(),
            events: Some(source),
        }
    }
}

/// One parsed request, as a handler sees it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path without its query string.
    pub path: &'a str,
    pub body: &'a [u8],
    /// The `Authorization` header, if sent.
    pub authorization: Option<&'a str>,
    /// Who connected.
    pub peer: std::net::SocketAddr,
}

/// Maps a request to a response; called for every request.
pub type Handler = Arc<dyn Fn(&Request<'_>) -> Response + Send + Sync>;

/// Limits that keep a careless or hostile client from holding memory or connections.
const MAX_LINE: usize = 8 * 1024;
const MAX_HEADERS: usize = 100;
/// Time allowed to send a request's head and body once its first byte arrived.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// Serves the function endpoint on `listener` until `cancel`.
pub async fn serve_http(listener: TcpListener, state: Arc<HealthState>, cancel: CancellationToken) {
    let handler: Handler = Arc::new(move |req: &Request<'_>| {
        let (status, text) = route(req.method, req.path, req.body, &state);
        Response::json(status, text)
    });
    serve(listener, handler, cancel).await
}

/// A small HTTP/1.1 server (keep-alive, bodies up to 1 MiB, bounded header lines and counts,
/// request and idle timeouts, at most 256 connections) answering with `handler` until
/// `cancel`. Enough for health probes, the watchdog's proxy and Prometheus scrapes.
pub async fn serve(listener: TcpListener, handler: Handler, cancel: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = cancel.cancelled() => return,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let handler = handler.clone();
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            r = handle(stream, peer, &handler) => {
                                if let Err(e) = r {
                                    tracing::debug!(error = %e, "http connection ended");
                                }
                            }
                            _ = cancel.cancelled() => {}
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of descriptors most likely: wait instead of spinning.
                    tracing::debug!(error = %e, "http accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = cancel.cancelled() => return,
        }
    }
}

/// Why a request could not be read.
enum ReadError {
    /// The client went away or the socket failed.
    Io(std::io::Error),
    /// Answer with this status, then close.
    Reject(u16, &'static str),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes (`None` at end of stream).
async fn read_line(reader: &mut BufReader<TcpStream>) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE || !line.ends_with(b"\n") {
        return Err(ReadError::Reject(431, "request line or header too long"));
    }
    Ok(Some(String::from_utf8_lossy(&line).trim_end().to_string()))
}

/// A request's head and body, owned.
struct RawRequest {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
    close: bool,
}

/// Reads the rest of a request whose first line is `request_line`.
async fn read_request(
    reader: &mut BufReader<TcpStream>,
    request_line: String,
) -> Result<Option<RawRequest>, ReadError> {
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut request = RawRequest {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or(target).to_string(),
        authorization: None,
        body: Vec::new(),
        close: false,
    };
    let mut content_length = 0usize;
    for count in 0.. {
        let Some(header) = read_line(reader).await? else {
            return Ok(None);
        };
        if header.is_empty() {
            break;
        }
        if count == MAX_HEADERS {
            return Err(ReadError::Reject(431, "too many headers"));
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(usize::MAX);
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                request.close = true;
            } else if name.eq_ignore_ascii_case("authorization") {
                request.authorization = Some(value.to_string());
            }
        }
    }
    if content_length > MAX_BODY {
        return Err(ReadError::Reject(413, "payload too large"));
    }
    request.body = vec![0u8; content_length];
    reader.read_exact(&mut request.body).await?;
    Ok(Some(request))
}

async fn handle(stream: TcpStream, peer: std::net::SocketAddr, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let first = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader)).await {
            Err(_) | Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(line))) => line,
            Ok(Err(ReadError::Io(e))) => return Err(e),
            Ok(Err(ReadError::Reject(status, why))) => {
                return reject(reader.get_mut(), status, why).await;
            }
        };
        let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut reader, first)).await {
            Err(_) => return reject(reader.get_mut(), 408, "request timeout").await,
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(r))) => r,
            Ok(Err(ReadError::Io(e))) => return Err(e),
            Ok(Err(ReadError::Reject(status, why))) => {
                return reject(reader.get_mut(), status, why).await;
            }
        };
        let response = handler(&Request {
            method: &request.method,
            path: &request.path,
            body: &request.body,
            authorization: request.authorization.as_deref(),
            peer,
        });
        if let Some(source) = &response.events {
            // The connection is the stream's from here on.
            return stream_events(reader.get_mut(), source).await;
        }
        respond(reader.get_mut(), &response).await?;
        if request.close {
            return Ok(());
        }
    }
}

/// Writes the event stream's head, then an event every period until a write fails (the client
/// went away); a keep-alive comment keeps proxies from closing a quiet stream.
async fn stream_events(stream: &mut TcpStream, source: &EventSource) -> std::io::Result<()> {
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\nretry: 2000\n\n",
        )
        .await?;
    let mut every = tokio::time::interval(source.period.max(std::time::Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // One line of data: a newline inside would end the event early.
        let data = (source.next)().replace(['\r', '\n'], " ");
        let event = format!("data: {data}\n\n");
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            stream.write_all(event.as_bytes()).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "event stream stalled"))??;
    }
}

/// Answers with an error and ends the connection (its input can no longer be trusted).
async fn reject(stream: &mut TcpStream, status: u16, why: &str) -> std::io::Result<()> {
    let body = serde_json::json!({ "error": why }).to_string();
    respond(stream, &Response::json(status, body)).await
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

async fn respond(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let (status, body) = (response.status, &response.body);
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        response.content_type,
        body.len(),
        if status == 401 {
            "WWW-Authenticate: Basic realm=\"autoscale-node\", charset=\"UTF-8\"\r\n"
        } else {
            ""
        }
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
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
