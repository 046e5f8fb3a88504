//! Shared helpers for the integration tests: start the real binary or a real redis-server on
//! a free port, and read raw RESP replies.
#![allow(dead_code)]

pub mod fake_http;
pub mod fake_kube;
pub mod fake_openfaas;
pub mod node;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for any single network wait in a test: a hang fails instead of stalling CI.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A server process killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    /// The node's HTTP port (`/metrics`, `/healthz`, `/readyz`); 0 for redis-server.
    pub http_port: u16,
}

impl ServerProcess {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect to server");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `autoscale-node serve --port 0 <extra>` and waits for the port it prints.
pub fn start_node(extra: &[&str]) -> ServerProcess {
    start_node_on(0, extra)
}

/// Starts `autoscale-node serve` on `port` (0 = a free one) and waits for the port it prints.
pub fn start_node_on(port: u16, extra: &[&str]) -> ServerProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["serve", "--port", &port.to_string(), "--http-port", "0"])
        .args(extra)
        .env("AUTOSCALE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn autoscale-node");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        // The broker's address, then the HTTP endpoint's.
        for _ in 0..2 {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
        }
        // Keep draining so the child never blocks on a full pipe.
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let line = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("autoscale-node printed its address");
    let port_of = |line: &str| -> u16 {
        line.trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line: {line:?}"))
    };
    let port = port_of(&line);
    let http = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("autoscale-node printed its HTTP address");
    assert!(
        http.contains("http"),
        "second line should be the HTTP address: {http:?}"
    );
    ServerProcess {
        child,
        port,
        http_port: port_of(&http),
    }
}

/// Whether a `redis-server` binary is available. In CI it must be (CI installs it).
pub fn have_redis_server() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var_os("CI").is_some() {
        panic!("redis-server is required in CI (.ci/run installs it)");
    }
    ok
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a real redis-server on a free port with persistence off.
pub fn start_redis_server() -> ServerProcess {
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = ServerProcess {
            child,
            port,
            http_port: 0,
        };
        let start = Instant::now();
        while start.elapsed() < IO_TIMEOUT {
            if let Ok(mut s) = TcpStream::connect(server.addr()) {
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 7];
                    if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                        return server;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("redis-server did not start");
}

/// Encodes a command as a RESP multibulk request.
pub fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads exactly one RESP2/RESP3 reply and returns its raw bytes.
pub struct ReplyReader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl ReplyReader {
    pub fn new(stream: TcpStream) -> Self {
        ReplyReader {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    pub fn command(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        self.send(&encode_command(&args));
        self.read_reply()
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one reply; empty if the connection closed first.
    pub fn read_reply(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = reply_end(&self.buf, 0) {
                return self.buf.drain(..end).collect();
            }
            if !self.fill() {
                return std::mem::take(&mut self.buf);
            }
        }
    }

    /// True if the server closed the connection (reads EOF within the timeout).
    pub fn closed(&mut self) -> bool {
        !self.fill()
    }
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Where the reply starting at `at` ends (exclusive), if it is complete.
pub fn reply_end(buf: &[u8], at: usize) -> Option<usize> {
    let tag = *buf.get(at)?;
    let le = line_end(buf, at)?;
    let header = std::str::from_utf8(&buf[at + 1..le]).ok()?;
    match tag {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(le + 2),
        b'$' | b'=' | b'!' => {
            let n: i64 = header.parse().ok()?;
            if n < 0 {
                return Some(le + 2);
            }
            let end = le + 2 + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n: i64 = header.parse().ok()?;
            let mut pos = le + 2;
            if n < 0 {
                return Some(pos);
            }
            let items = if tag == b'%' || tag == b'|' { 2 * n } else { n };
            for _ in 0..items {
                pos = reply_end(buf, pos)?;
            }
            Some(pos)
        }
        _ => Some(le + 2),
    }
}

/// Renders raw reply bytes readably for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "⏎")
}

/// Bound for one awaited operation in an async test.
pub const T: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`T`].
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(T, f).await.expect("operation timed out")
}

/// A redis-rs connection to `url`.
/// Sends one command (`args[0]` is its name) and reads its reply, under the IO timeout.
pub async fn cmd<T: redis::FromRedisValue>(
    c: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    within(command.query_async(c)).await
}

pub async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    within(
        redis::Client::open(url)
            .expect("valid URL")
            .get_multiplexed_async_connection(),
    )
    .await
    .expect("connect with redis-rs")
}

/// GET `path` on an HTTP port of this machine, with an `Authorization` header if given:
/// (status, body).
pub fn http_get_with(port: u16, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// [`http_get_with`] without credentials.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_get_with(port, path, None)
}

/// The value of a sample line `name{labels} value` in a Prometheus exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Every scalar in a reply, depth first, as text (compares replies whatever their nesting
/// and protocol).
pub fn flatten(v: &redis::Value) -> Vec<String> {
    match v {
        redis::Value::Array(items) | redis::Value::Set(items) => items.iter().flat_map(flatten).collect(),
        redis::Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| [flatten(k), flatten(v)].concat())
            .collect(),
        redis::Value::BulkString(b) => vec![String::from_utf8_lossy(b).into_owned()],
        redis::Value::SimpleString(s) => vec![s.clone()],
        redis::Value::Int(i) => vec![i.to_string()],
        redis::Value::Nil => vec!["(nil)".into()],
        redis::Value::Double(d) => vec![d.to_string()],
        other => vec![format!("{other:?}")],
    }
}
