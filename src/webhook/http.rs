//! A lean HTTP/1.1 client connection for the delivery hot path.
//!
//! hyper's client builds a `HeaderMap` and boxes per request; a load generator that must not
//! allocate per event writes the request head into a buffer it reuses and parses the response
//! head in place with `httparse`. Bodies are framed by Content-Length, chunked encoding, or the
//! connection closing, and are discarded: only the status matters to a webhook provider.
//!
//! Over TLS (rustls, through tokio-rustls) the TCP connect is awaited first, then the handshake
//! is timed on its own; the byte counts are those on the wire (records and handshake included).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::record::ErrorKind;
use crate::tls::ClientTls;
pub use crate::webhook::response::Response;
use crate::webhook::response::ResponseReader;

/// The socket under a connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<Counted>>),
    /// Between the TCP connect and the end of the TLS handshake (or after it failed).
    Opening,
}

/// A TCP stream that counts the bytes it carries (under TLS, the plaintext sizes say nothing
/// of the wire).
struct Counted {
    inner: TcpStream,
    read: u64,
    written: u64,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read += (buf.filled().len() - before) as u64;
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One TLS handshake: when it started and ended (monotonic ns), and whether it resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Started (the TCP connection was up).
    pub from: u64,
    /// Done.
    pub to: u64,
    /// An earlier session was resumed (no certificate exchange).
    pub resumed: bool,
}

/// One client connection with its read buffer.
pub struct Conn {
    stream: Stream,
    /// Set by [`Conn::start_tls`] until the handshake runs (at the first exchange).
    pending_tls: Option<std::sync::Arc<ClientTls>>,
    /// The handshake, until [`Conn::take_handshake`] takes it.
    handshake: Option<Handshake>,
    buf: Box<[u8]>,
    filled: usize,
    /// Set by [`Conn::start`] until the first write shows the connection is up: when it
    /// started, and once up, when it was up.
    setup: Setup,
    /// Bytes written on this connection.
    pub bytes_out: u64,
    /// Bytes read on this connection.
    pub bytes_in: u64,
}

/// Largest response head accepted.
pub(super) const READ_BUF: usize = 8 * 1024;

/// Where a connection opened by [`Conn::start`] is in its TCP handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Up (or opened by [`Conn::connect`], which waited for it).
    Done,
    /// The handshake started at this instant (monotonic ns) and is not known to be done.
    Started(u64),
    /// Up: started at `.0`, known up at `.1`; not yet taken by [`Conn::take_connected`].
    Up(u64, u64),
}

/// Why a request did not get its answer: the connection never came up, or the exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The TCP connection could not be set up.
    Connect(ErrorKind),
    /// The connection was up; the request or its answer failed.
    Exchange(ErrorKind),
}

impl Conn {
    /// Opens a TCP connection with Nagle off and waits until it is up.
    pub async fn connect(addr: SocketAddr) -> Result<Self, ErrorKind> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| ErrorKind::from_io(&e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| ErrorKind::from_io(&e))?;
        Ok(Self::with(Stream::Plain(stream), None, Setup::Done))
    }

    /// Starts a TCP connection (Nagle off) without waiting for it: the first write of
    /// [`round_trip`](Self::round_trip) finds out whether it is up. On loopback the handshake
    /// is usually over before `connect` returns, so a fresh connection per request saves a
    /// reactor turn and the `SO_ERROR` query of [`Conn::connect`]. `buf` is a read buffer to
    /// reuse (from [`into_buf`](Self::into_buf)): no allocation per connection.
    pub fn start(addr: SocketAddr, buf: Option<Box<[u8]>>) -> Result<Self, ErrorKind> {
        use socket2::{Domain, Protocol, Socket, Type};
        let io = |e: std::io::Error| ErrorKind::from_io(&e);
        let started = crate::clock::mono_ns();
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )
        .map_err(io)?;
        socket.set_tcp_nodelay(true).map_err(io)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(io(e)),
        }
        let stream = TcpStream::from_std(socket.into()).map_err(io)?;
        Ok(Self::with(
            Stream::Plain(stream),
            buf,
            Setup::Started(started),
        ))
    }

    /// [`start`](Self::start) for a TLS connection: the first exchange waits for the TCP
    /// connection, then runs the handshake (timed apart, see [`take_handshake`](Self::take_handshake)).
    pub fn start_tls(
        addr: SocketAddr,
        buf: Option<Box<[u8]>>,
        tls: &std::sync::Arc<ClientTls>,
    ) -> Result<Self, ErrorKind> {
        let mut conn = Self::start(addr, buf)?;
        // Shared: the handshake copies the server name once (tokio-rustls owns it), no more.
        conn.pending_tls = Some(tls.clone());
        Ok(conn)
    }

    fn with(stream: Stream, buf: Option<Box<[u8]>>, setup: Setup) -> Self {
        Self {
            stream,
            pending_tls: None,
            handshake: None,
            buf: buf.unwrap_or_else(|| vec![0u8; READ_BUF].into_boxed_slice()),
            filled: 0,
            setup,
            bytes_out: 0,
            bytes_in: 0,
        }
    }

    /// Closes the connection, keeping its read buffer for the next one.
    pub fn into_buf(self) -> Box<[u8]> {
        self.buf
    }

    /// For a connection from [`Conn::start`] that has come up since the last call: when its
    /// handshake started and when it was known to be up (monotonic ns).
    pub fn take_connected(&mut self) -> Option<(u64, u64)> {
        match self.setup {
            Setup::Up(from, to) => {
                self.setup = Setup::Done;
                Some((from, to))
            }
            _ => None,
        }
    }

    /// The TLS handshake, once, after the exchange that ran it.
    pub fn take_handshake(&mut self) -> Option<Handshake> {
        self.handshake.take()
    }

    /// Waits for the TCP connection, then runs the TLS handshake; failures are the
    /// connection's.
    async fn open_tls(&mut self, tls: std::sync::Arc<ClientTls>) -> Result<(), Failure> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Opening) else {
            return Err(Failure::Connect(ErrorKind::Tls));
        };
        let connect_failed = |e: &io::Error| Failure::Connect(ErrorKind::from_io(e));
        if let Setup::Started(from) = self.setup {
            tcp.writable().await.map_err(|e| connect_failed(&e))?;
            if let Some(e) = tcp.take_error().map_err(|e| connect_failed(&e))? {
                return Err(connect_failed(&e));
            }
            self.setup = Setup::Up(from, crate::clock::mono_ns());
        }
        let from = crate::clock::mono_ns();
        let counted = Counted {
            inner: tcp,
            read: 0,
            written: 0,
        };
        let stream = tls
            .connector
            .connect(tls.server_name.clone(), counted)
            .await
            .map_err(|e| Failure::Connect(ErrorKind::from_handshake(&e)))?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.handshake = Some(Handshake {
            from,
            to: crate::clock::mono_ns(),
            resumed,
        });
        self.stream = Stream::Tls(Box::new(stream));
        Ok(())
    }

    /// Takes the byte counts from the wire, for a TLS connection.
    fn count_wire(&mut self) {
        if let Stream::Tls(s) = &self.stream {
            let counted = s.get_ref().0;
            self.bytes_out = counted.written;
            self.bytes_in = counted.read;
        }
    }

    /// Writes a complete request and reads the whole response.
    pub async fn round_trip(&mut self, request: &[u8]) -> Result<Response, ErrorKind> {
        self.exchange(request).await.map_err(|f| match f {
            Failure::Connect(kind) | Failure::Exchange(kind) => kind,
        })
    }

    /// [`round_trip`](Self::round_trip), telling a connection that never came up apart.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        if let Some(tls) = self.pending_tls.take() {
            let opened = self.open_tls(tls).await;
            self.count_wire();
            opened?;
        }
        let result = self.exchange_open(request).await;
        self.count_wire();
        result
    }

    async fn exchange_open(&mut self, request: &[u8]) -> Result<Response, Failure> {
        self.write_request(request).await?;
        self.bytes_out += request.len() as u64;
        self.read_response().await.map_err(Failure::Exchange)
    }

    async fn write_request(&mut self, request: &[u8]) -> Result<(), Failure> {
        let tcp = match &mut self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => {
                let failed = |e: io::Error| Failure::Exchange(ErrorKind::from_io(&e));
                tls.write_all(request).await.map_err(failed)?;
                return tls.flush().await.map_err(failed);
            }
            Stream::Opening => return Err(Failure::Exchange(ErrorKind::Closed)),
        };
        let mut at = 0;
        while at < request.len() {
            // A socket error before the first byte went out means the handshake failed.
            let fail = |e: &std::io::Error| match self.setup {
                Setup::Started(_) => Failure::Connect(ErrorKind::from_io(e)),
                _ => Failure::Exchange(ErrorKind::from_io(e)),
            };
            match tcp.try_write(&request[at..]) {
                Ok(n) => {
                    if let Setup::Started(from) = self.setup {
                        self.setup = Setup::Up(from, crate::clock::mono_ns());
                    }
                    at += n;
                }
                // Still in the handshake, or the send buffer is full: wait for room.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = tcp.writable().await {
                        return Err(fail(&e));
                    }
                }
                Err(e) => return Err(fail(&e)),
            }
        }
        Ok(())
    }

    async fn fill_more(&mut self) -> Result<usize, ErrorKind> {
        if self.filled == self.buf.len() {
            return Err(ErrorKind::BadResponse);
        }
        let into = &mut self.buf[self.filled..];
        let n = match &mut self.stream {
            Stream::Plain(tcp) => tcp.read(into).await,
            Stream::Tls(tls) => tls.read(into).await,
            Stream::Opening => return Err(ErrorKind::Closed),
        }
        .map_err(|e| ErrorKind::from_io(&e))?;
        self.filled += n;
        self.bytes_in += n as u64;
        Ok(n)
    }

    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    async fn read_response(&mut self) -> Result<Response, ErrorKind> {
        let mut reader = ResponseReader::new();
        let mut eof = false;
        loop {
            let full = self.filled == self.buf.len();
            let (used, done) = reader.advance(&self.buf[..self.filled], eof, full)?;
            self.consume(used);
            if let Some(response) = done {
                return Ok(response);
            }
            eof = self.fill_more().await? == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A server that answers each request with the next canned response, then closes.
    async fn canned(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            for r in responses {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(r).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_chunked_and_close_framed_bodies_on_one_connection() {
        let addr = canned(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 201 Created\r\n\r\nuntil close",
        ])
        .await;
        let mut conn = Conn::connect(addr).await.unwrap();
        let req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        let statuses = [
            (200, true, None),
            (503, true, None),
            (204, true, None),
            (429, true, Some(7)),
            (201, false, None),
        ];
        for (status, keep_alive, retry_after_s) in statuses {
            let r = conn.round_trip(req).await.unwrap();
            assert_eq!(
                (r.status, r.keep_alive, r.retry_after_s),
                (status, keep_alive, retry_after_s)
            );
        }
        assert!(conn.bytes_in > 100 && conn.bytes_out == 5 * req.len() as u64);
    }

    #[tokio::test]
    async fn a_peer_that_hangs_up_mid_response_is_closed_not_ok() {
        let addr = canned(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"]).await;
        let mut conn = Conn::connect(addr).await.unwrap();
        let r = conn.round_trip(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(r, Err(ErrorKind::Closed));
    }

    #[tokio::test]
    async fn refused_connections_are_classified() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(Conn::connect(addr).await.err(), Some(ErrorKind::Refused));
    }

    #[tokio::test]
    async fn a_started_connection_learns_from_its_first_write_whether_it_came_up() {
        let addr = canned(vec![b"HTTP/1.1 204 No Content\r\n\r\n"]).await;
        let before = crate::clock::mono_ns();
        let mut conn = Conn::start(addr, Some(vec![0u8; 1024].into_boxed_slice())).unwrap();
        assert_eq!(
            conn.take_connected(),
            None,
            "not known to be up before a write"
        );
        let r = conn.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(r.map(|r| r.status), Ok(204));
        let (from, to) = conn.take_connected().expect("up once the request went out");
        assert!(before <= from && from <= to, "{before} {from} {to}");
        assert_eq!(conn.take_connected(), None, "handed over once");
        assert_eq!(
            conn.into_buf().len(),
            1024,
            "the buffer it was given comes back"
        );

        // Nobody listening: the failure is the connection's, not the request's.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = listener.local_addr().unwrap();
        drop(listener);
        let mut conn = Conn::start(gone, None).unwrap();
        let r = conn.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(r.err(), Some(Failure::Connect(ErrorKind::Refused)));
    }

    #[tokio::test]
    async fn a_request_larger_than_the_send_buffer_waits_for_room_and_goes_out_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = vec![b'x'; 8 << 20];
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let expect = [head.as_bytes(), &body[..]].concat();
        let len = expect.len();
        // The server reads slowly at first, so the client's writes fill the buffers.
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut got = Vec::with_capacity(len);
            let mut buf = vec![0u8; 64 << 10];
            while got.len() < len {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early at {}", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            got
        });
        let mut conn = Conn::start(addr, None).unwrap();
        let r = conn.exchange(&expect).await;
        assert_eq!(r.map(|r| r.status), Ok(204));
        assert_eq!(conn.bytes_out, len as u64);
        assert!(
            server.await.unwrap() == expect,
            "head and body arrived in order, whole"
        );
    }

    #[test]
    fn exhausted_ports_and_descriptors_have_their_own_kinds() {
        let err = |code| io::Error::from_raw_os_error(code);
        assert_eq!(
            ErrorKind::from_io(&err(libc::EADDRNOTAVAIL)),
            ErrorKind::NoPorts
        );
        assert_eq!(ErrorKind::from_io(&err(libc::EMFILE)), ErrorKind::NoFiles);
        assert_eq!(ErrorKind::from_io(&err(libc::ENFILE)), ErrorKind::NoFiles);
        assert_eq!(
            ErrorKind::from_io(&err(libc::ECONNREFUSED)),
            ErrorKind::Refused
        );
    }

    #[test]
    fn exhaustion_names_the_limit_and_what_to_change() {
        use crate::record::results::ModelSummary;
        let mut m = ModelSummary::default();
        assert_eq!(
            crate::run::exhaustion_message(std::slice::from_ref(&m)),
            None
        );
        m.errors.insert("no_files".into(), 3);
        m.errors.insert("no_ports".into(), 5);
        let msg = crate::run::exhaustion_message(&[m]).unwrap();
        assert!(
            msg.contains(
                "3 connection attempts failed for want of file descriptors (open-files limit"
            ),
            "{msg}"
        );
        assert!(msg.contains("ulimit -Hn"), "{msg}");
        assert!(
            msg.contains("5 connection attempts failed for want of local ports (ephemeral range"),
            "{msg}"
        );
        assert!(msg.contains("keep-alive"), "{msg}");
    }
}
