//! Slow and malformed clients, for the built-in HTTP servers (receiver, sink, WebSocket
//! handshake): a cap on the request head, a deadline for receiving it, and how a connection
//! ended, so each server can count what it refused.
//!
//! hyper has its own `header_read_timeout`, but it restarts whenever hyper waits for a request
//! head, idle keep-alive included: it would close the harness's pooled connections between
//! sparse events, and the provider would count each as a failed attempt. This guard starts the
//! clock at accept and at the first byte of each later request instead, so a connection that
//! trickles a head is closed, and one that has finished its requests may stay idle.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a client may take and how large its request head may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// From accept, or from the first byte of a later request, to the end of its head.
    pub head_timeout: Duration,
    /// From the end of the head to the end of the body (answered 408).
    pub body_timeout: Duration,
    /// Largest request head; a larger one is answered 431 (hyper's read buffer, at least 8 KiB).
    pub max_head_bytes: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_head_bytes: 64 * 1024,
        }
    }
}

impl ConnLimits {
    /// An HTTP/1 connection builder with the head cap applied.
    pub fn http1(&self) -> http1::Builder {
        let mut b = http1::Builder::new();
        // hyper refuses less than 8 KiB; its read buffer holds the head, so this caps it.
        b.max_buf_size(self.max_head_bytes.max(8192));
        b
    }
}

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;
const TIMED_OUT: u8 = 3;

/// Where a connection is, shared by its socket wrapper and its service.
#[derive(Debug)]
pub struct ConnState {
    phase: AtomicU8,
}

impl ConnState {
    /// Marks a request as handed to the service until the returned value is dropped: no head
    /// deadline while the service reads the body (it has its own) or holds the answer.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.phase.store(BUSY, Relaxed);
        Busy(self.clone())
    }

    /// True when the connection was closed for not sending its head in time.
    pub fn timed_out(&self) -> bool {
        self.phase.load(Relaxed) == TIMED_OUT
    }
}

/// See [`ConnState::busy`].
#[derive(Debug)]
pub struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        // Between requests, until the next one's first byte.
        let _ = self.0.phase.compare_exchange(BUSY, IDLE, Relaxed, Relaxed);
    }
}

/// A socket whose reads fail with `TimedOut` once a request head is overdue.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    state: Arc<ConnState>,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    /// Wraps a just-accepted socket: its first head is due within `limits.head_timeout`.
    pub fn new(inner: S, limits: &ConnLimits) -> (Self, Arc<ConnState>) {
        let state = Arc::new(ConnState {
            phase: AtomicU8::new(HEAD),
        });
        let guarded = Self {
            inner,
            state: state.clone(),
            timeout: limits.head_timeout,
            deadline: Box::pin(tokio::time::sleep(limits.head_timeout)),
        };
        (guarded, state)
    }

    /// The socket, for protocols that take it over (WebSocket after the upgrade).
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn overdue(&mut self) -> io::Error {
        self.state.phase.store(TIMED_OUT, Relaxed);
        io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let got_bytes = matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        let phase = this.state.phase.load(Relaxed);
        if phase == IDLE && got_bytes {
            this.state.phase.store(HEAD, Relaxed);
            let due = Instant::now() + this.timeout;
            this.deadline.as_mut().reset(due);
        } else if phase == HEAD {
            // A client that trickles a byte at a time never leaves a read pending for long, so
            // the deadline is checked on every read, not only when the socket is quiet.
            let overdue = if got_bytes {
                Instant::now() >= this.deadline.deadline()
            } else {
                polled.is_pending() && this.deadline.as_mut().poll(cx).is_ready()
            };
            if overdue {
                return Poll::Ready(Err(this.overdue()));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// How a connection ended, as the servers count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Closed by either side after complete requests (or mid-request by the client).
    Normal,
    /// A request hyper could not parse (answered 400, or 414 for a long URI).
    Malformed,
    /// A request head over [`ConnLimits::max_head_bytes`] (answered 431).
    HeadTooLarge,
    /// No complete head within [`ConnLimits::head_timeout`] (closed).
    TimedOut,
}

impl Ending {
    /// Classifies what `serve_connection` returned.
    pub fn of(result: &Result<(), hyper::Error>, state: &ConnState) -> Self {
        if state.timed_out() {
            return Self::TimedOut;
        }
        match result {
            Err(e) if e.is_parse_too_large() => Self::HeadTooLarge,
            Err(e) if e.is_parse() => Self::Malformed,
            _ => Self::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_head_is_due_from_accept_and_from_the_first_byte_of_each_later_request() {
        let limits = ConnLimits {
            head_timeout: Duration::from_secs(5),
            ..ConnLimits::default()
        };
        let (mut client, server) = tokio::io::duplex(64);
        let (mut guarded, state) = Guarded::new(server, &limits);
        let mut buf = [0u8; 8];

        client.write_all(b"GET").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 3);
        // The service took the request and answered: idle time is not limited...
        drop(state.busy());
        tokio::time::sleep(Duration::from_secs(60)).await;
        client.write_all(b"G").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 1);
        // ...but the next head, once started, is.
        tokio::time::sleep(Duration::from_secs(4)).await;
        client.write_all(b"E").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 1);
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(state.timed_out());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_sends_is_closed() {
        let (_client, server) = tokio::io::duplex(64);
        let (mut guarded, state) = Guarded::new(server, &ConnLimits::default());
        let mut buf = [0u8; 8];
        assert!(guarded.read(&mut buf).await.is_err());
        assert!(state.timed_out());
    }
}
