//! The socket under hyper, with the deadlines hyper does not keep the way a server should.
//!
//! hyper's `header_read_timeout` closes the connection without a response and starts counting
//! when the connection goes idle, so it cannot tell a slow request from a quiet keep-alive
//! connection. Here the two are apart: a request that began (a byte arrived) must arrive whole
//! within [`REQUEST_TIMEOUT`] or gets `408 Request Timeout` before the connection closes; a
//! connection with no request under way is closed after [`IDLE_TIMEOUT`]; a write the client
//! does not take for [`REQUEST_TIMEOUT`] (a stalled event stream) ends the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant, Sleep};

/// Time allowed to send a request's head and body once its first byte arrived.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle keep-alive connection is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

const TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: 27\r\nConnection: close\r\n\r\n{\"error\":\"request timeout\"}";

/// A TCP stream that keeps the request, idle and write deadlines (see the module docs).
pub struct Deadlines {
    stream: TcpStream,
    /// When the request under way began; `None` between requests (a response was written).
    request_started: Option<Instant>,
    /// Last byte read or written.
    last_activity: Instant,
    /// Since when a write has waited for the client.
    write_stalled_since: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// The 408 under way: how much of it was written.
    refusal: Option<usize>,
}

impl Deadlines {
    pub fn new(stream: TcpStream) -> Deadlines {
        let now = Instant::now();
        Deadlines {
            stream,
            request_started: None,
            last_activity: now,
            write_stalled_since: None,
            read_timer: Box::pin(tokio::time::sleep_until(now + IDLE_TIMEOUT)),
            write_timer: Box::pin(tokio::time::sleep_until(now + REQUEST_TIMEOUT)),
            refusal: None,
        }
    }

    /// Writes what is left of the 408, then fails the read so that hyper closes the
    /// connection (an I/O error makes it send nothing of its own).
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(written) = self.refusal.filter(|w| *w < TIMEOUT_RESPONSE.len()) {
            match Pin::new(&mut self.stream).poll_write(cx, &TIMEOUT_RESPONSE[written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(n)) => self.refusal = Some(written + n),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Err(timed_out("request timeout")))
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

/// Resets `timer` to `deadline` when it moved, and tells whether it has passed.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl AsyncRead for Deadlines {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            return this.poll_refuse(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let now = Instant::now();
                    this.last_activity = now;
                    this.request_started.get_or_insert(now);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = match this.request_started {
                    Some(started) => started + REQUEST_TIMEOUT,
                    None => this.last_activity + IDLE_TIMEOUT,
                };
                if !expired(&mut this.read_timer, deadline, cx) {
                    return Poll::Pending;
                }
                if this.request_started.is_some() {
                    this.refusal = Some(0);
                    this.poll_refuse(cx)
                } else {
                    // Idle too long: the end of the stream, which hyper takes as a close.
                    Poll::Ready(Ok(()))
                }
            }
        }
    }
}

impl AsyncWrite for Deadlines {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            // The 408 went out instead; nothing may follow it.
            return Poll::Ready(Err(timed_out("request timeout")));
        }
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                this.write_stalled_since = None;
                if n > 0 {
                    // A response is going out: the request is over.
                    this.request_started = None;
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let since = *this.write_stalled_since.get_or_insert_with(Instant::now);
                if expired(&mut this.write_timer, since + REQUEST_TIMEOUT, cx) {
                    return Poll::Ready(Err(timed_out("the client stopped reading")));
                }
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
