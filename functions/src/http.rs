//! A minimal HTTP/1.1 endpoint for the OpenFaaS of-watchdog in `mode: http`.
//!
//! `GET /_/health` answers 200 once the function is connected to the broker (503 before), and
//! `POST /` accepts the original's invocation payload. A function always starts its loop from
//! its flags at process start, so the invocation is optional: it is acknowledged with the
//! running state (202 the first time, 200 after) and its JSON must parse (else 400). The
//! watchdog proxies one request per connection; we still honour keep-alive.

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

/// One HTTP response.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

/// Maps `(method, path, body)` to a response; called for every request.
pub type Handler = Arc<dyn Fn(&str, &str, &[u8]) -> Response + Send + Sync>;

/// Serves the function endpoint on `listener` until `cancel`.
pub async fn serve_http(listener: TcpListener, state: Arc<HealthState>, cancel: CancellationToken) {
    let handler: Handler = Arc::new(move |method, path, body| {
        let (status, text) = route(method, path, body, &state);
        Response::json(status, text)
    });
    serve(listener, handler, cancel).await
}

/// A small HTTP/1.1 server (keep-alive, bodies up to 1 MiB) answering with `handler` until
/// `cancel`. Enough for health probes, the watchdog's proxy and Prometheus scrapes.
pub async fn serve(listener: TcpListener, handler: Handler, cancel: CancellationToken) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &handler).await {
                            tracing::debug!(error = %e, "http connection ended");
                        }
                    });
                }
            }
            _ = cancel.cancelled() => return,
        }
    }
}

async fn handle(stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut content_length = 0usize;
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().unwrap_or(usize::MAX);
                } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        if content_length > MAX_BODY {
            respond(
                reader.get_mut(),
                &Response::json(413, "{\"error\":\"payload too large\"}"),
            )
            .await?;
            return Ok(());
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body).await?;
        // The query string does not select a route.
        let path = path.split('?').next().unwrap_or(path);
        let response = handler(method, path, &body);
        respond(reader.get_mut(), &response).await?;
        if close {
            return Ok(());
        }
    }
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
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        response.content_type,
        body.len()
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
