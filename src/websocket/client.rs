//! One client connection: TCP connect from a chosen source address, the upgrade handshake, and
//! lean framing. The fleet owns the policy (when to connect, what to send, what to record); this
//! file only speaks the protocol.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::net::{TcpSocket, TcpStream};

use crate::record::ErrorKind;
use crate::tls::session::ClientSession;
use crate::websocket::wire::Wire;

/// `ws://host:port/path` with an optional `{subscriber}` placeholder (same shape as webhook URLs).
pub type WsUrl = crate::url_template::UrlTemplate;

const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// Opens a TCP connection, from `source` when given. With a source address the kernel picks the
/// port at connect time (IP_BIND_ADDRESS_NO_PORT), so each source address has its own 28k-port
/// range per destination and the port search stays fast at tens of thousands of connections.
pub async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        let one: libc::c_int = 1;
        // SAFETY: valid socket descriptor and a c_int option value.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The Sec-WebSocket-Accept value for a key (RFC 6455 section 4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    B64.encode(sha.finalize())
}

thread_local! {
    /// Handshake scratch shared by this thread's connections: a handshake leaves no heap
    /// allocation behind, so tens of thousands of them do not fragment the heap between the
    /// connections' long-lived state.
    static HANDSHAKE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// What a connection asks for after connecting.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    /// A WebSocket upgrade with this `Sec-WebSocket-Key` (base64).
    Upgrade(&'a [u8; 24]),
    /// A server-sent event stream, resuming after this event id (empty: from now).
    EventStream(&'a str),
}

/// How the body of an event stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Bytes as they come (a WebSocket, or a stream until the server closes).
    Raw,
    /// Chunked transfer coding.
    Chunked,
}

fn check_head(buf: &[u8], ask: Ask<'_>) -> Result<Option<(usize, Framing)>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value)
            };
            let want = match ask {
                Ask::Upgrade(_) => 101,
                Ask::EventStream(_) => 200,
            };
            match resp.code {
                Some(c) if c == want => {}
                // Refused for want of credentials: counted apart, the scenario's headers (or
                // the server's token) are what to change.
                Some(401 | 403) => return Err(ErrorKind::Auth),
                Some(500..=599) => return Err(ErrorKind::Status5xx),
                _ => return Err(ErrorKind::Status4xx),
            }
            match ask {
                Ask::Upgrade(key) => {
                    let expected = accept_key(key);
                    if header("sec-websocket-accept") == Some(expected.as_bytes()) {
                        Ok(Some((len, Framing::Raw)))
                    } else {
                        Err(ErrorKind::BadResponse)
                    }
                }
                Ask::EventStream(_) => {
                    let is_stream = header("content-type").is_some_and(|v| {
                        v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"text/event-stream")
                    });
                    if !is_stream {
                        return Err(ErrorKind::BadResponse);
                    }
                    let chunked = header("transfer-encoding").is_some_and(|v| {
                        v.split(|&b| b == b',')
                            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                    });
                    Ok(Some((
                        len,
                        if chunked {
                            Framing::Chunked
                        } else {
                            Framing::Raw
                        },
                    )))
                }
            }
        }
        Ok(httparse::Status::Partial) if buf.len() < 8192 => Ok(None),
        // A TLS alert record: a TLS server on a ws:// url.
        _ if buf.starts_with(&[0x15, 0x03]) => Err(ErrorKind::Tls),
        _ => Err(ErrorKind::BadResponse),
    }
}

/// Sends the upgrade (or event-stream) request and checks the answer; bytes that arrived after
/// the response head (the first frames or events, if the server was quick) are left in the
/// wire's incomplete frame. Returns how the rest is framed.
/// The request path is `url`'s with `subscriber` in its placeholder. Nothing is allocated unless
/// the socket does not take the request at once or the answer arrives in pieces: every
/// allocation a connect leaves behind would sit between the held connections' long-lived state
/// and fragment the heap.
pub async fn handshake(
    wire: &ClientWire,
    host: &str,
    url: &WsUrl,
    headers: &[crate::scenario::ExtraHeader],
    subscriber: u64,
    key_bytes: [u8; 16],
    stream_after: Option<&str>,
) -> Result<Framing, ErrorKind> {
    let mut key = [0u8; 24];
    B64.encode_slice(key_bytes, &mut key)
        .expect("16 bytes are 24 in base64");
    let ask = match stream_after {
        Some(id) => Ask::EventStream(id),
        None => Ask::Upgrade(&key),
    };
    HANDSHAKE.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        write_request_head(&mut b, host, url, headers, subscriber, None);
        match ask {
            Ask::Upgrade(key) => {
                b.extend_from_slice(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ");
                b.extend_from_slice(key);
            }
            Ask::EventStream(last_id) => {
                b.extend_from_slice(b"\r\nAccept: text/event-stream\r\nCache-Control: no-cache");
                if !last_id.is_empty() {
                    b.extend_from_slice(b"\r\nLast-Event-ID: ");
                    b.extend_from_slice(last_id.as_bytes());
                }
            }
        }
        b.extend_from_slice(b"\r\n\r\n");
        wire.send(&b, usize::MAX).ok_or(ErrorKind::Reset)
    })?;
    while !wire.pending.borrow().is_empty() {
        wire.stream
            .writable()
            .await
            .map_err(|e| ErrorKind::from_io(&e))?;
        wire.flush().map_err(|e| ErrorKind::from_io(&e))?;
    }
    // The rare head that needs several reads is kept here.
    let mut kept: Vec<u8> = Vec::new();
    loop {
        wire.stream
            .readable()
            .await
            .map_err(|e| ErrorKind::from_io(&e))?;
        let done = HANDSHAKE.with(|b| {
            let mut b = b.borrow_mut();
            b.clear();
            b.extend_from_slice(&kept);
            match wire.read_once(&mut b) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(ErrorKind::Closed)
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(ErrorKind::Tls),
                Err(e) => return Err(ErrorKind::from_io(&e)),
            }
            match check_head(&b, ask)? {
                Some((len, framing)) => {
                    wire.partial.borrow_mut().extend_from_slice(&b[len..]);
                    Ok(Some(framing))
                }
                None => {
                    kept.clear();
                    kept.extend_from_slice(&b);
                    Ok(None)
                }
            }
        })?;
        if let Some(framing) = done {
            return Ok(framing);
        }
    }
}

/// Writes a `GET` request's head without its final blank line: the request line (`url`'s path
/// with `subscriber` in its placeholder and, when given, `cursor` for every `{cursor}`), Host,
/// User-Agent and the scenario's headers. Nothing is allocated beyond `b`'s growth.
pub fn write_request_head(
    b: &mut Vec<u8>,
    host: &str,
    url: &WsUrl,
    headers: &[crate::scenario::ExtraHeader],
    subscriber: u64,
    cursor: Option<&str>,
) {
    let mut sub_buf = itoa::Buffer::new();
    let (sub_text, suffix) = match &url.path_suffix {
        Some(suffix) => (sub_buf.format(subscriber), suffix.as_str()),
        None => ("", ""),
    };
    let path_part = |b: &mut Vec<u8>, text: &str| match cursor {
        Some(c) => {
            let mut parts = text.split("{cursor}");
            if let Some(first) = parts.next() {
                b.extend_from_slice(first.as_bytes());
            }
            for part in parts {
                b.extend_from_slice(c.as_bytes());
                b.extend_from_slice(part.as_bytes());
            }
        }
        None => b.extend_from_slice(text.as_bytes()),
    };
    b.extend_from_slice(b"GET ");
    path_part(b, &url.path_prefix);
    b.extend_from_slice(sub_text.as_bytes());
    path_part(b, suffix);
    for part in [
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\nUser-Agent: pushbench/",
        env!("CARGO_PKG_VERSION"),
    ] {
        b.extend_from_slice(part.as_bytes());
    }
    for h in headers {
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(h.name.as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(h.value.prefix.as_bytes());
        if let Some(suffix) = &h.value.suffix {
            b.extend_from_slice(itoa::Buffer::new().format(subscriber).as_bytes());
            b.extend_from_slice(suffix.as_bytes());
        }
    }
}

/// A client connection's socket (and TLS session).
pub type ClientWire = Wire<ClientSession>;

/// What an event-stream connection keeps to read its body.
pub struct StreamReader {
    /// Present when the body is chunked.
    pub dechunk: Option<crate::chunked::Dechunker>,
    /// The event-stream parser (it carries the last event id across reconnects).
    pub parser: crate::sse::parse::Parser,
}

/// A live client connection, shared between its reader task and the fleet's senders.
pub struct ClientConn {
    /// The socket, its TLS session and its buffers.
    pub wire: ClientWire,
    /// Server-sent events: the body's reader (`None`: a WebSocket or a long poll).
    pub stream: Option<Box<RefCell<StreamReader>>>,
    /// Long polling: the answer being read.
    pub poll: Option<Box<RefCell<crate::websocket::fleet::PollReader>>>,
    /// Monotonic send time of the unanswered ping (0 = none).
    pub ping_out_ns: Cell<u64>,
    /// When the next ping is due.
    pub next_ping_ns: Cell<u64>,
    /// Close with this code at the next wake (end of run, or 0 = dead: drop without closing).
    pub close_with: Cell<Option<u16>>,
    /// Has frames queued by the echo sender that are not written yet.
    pub queued: Cell<bool>,
}

impl ClientConn {
    /// Wraps a connected, upgraded socket.
    pub fn new(wire: ClientWire, next_ping_ns: u64, stream: Option<StreamReader>) -> Self {
        Self {
            wire,
            stream: stream.map(|r| Box::new(RefCell::new(r))),
            poll: None,
            ping_out_ns: Cell::new(0),
            next_ping_ns: Cell::new(next_ping_ns),
            close_with: Cell::new(None),
            queued: Cell::new(false),
        }
    }

    /// Speaks HTTP (an event stream or long polls): no frames, no pings; the run's end shuts
    /// the socket down.
    pub fn is_http(&self) -> bool {
        self.stream.is_some() || self.poll.is_some()
    }

    /// Writes now if the socket takes it, queueing the rest; returns bytes put on the wire,
    /// or `None` when the connection is broken or the queue is over `max_pending`.
    pub fn send(&self, bytes: &[u8], max_pending: usize) -> Option<usize> {
        // What the socket did not take waits in the queue for the task or the fleet's tick.
        self.wire.send(bytes, max_pending).map(|(n, _)| n)
    }

    /// Writes queued bytes until the socket would block.
    pub fn flush(&self) -> io::Result<()> {
        self.wire.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn builtin_paths_carry_the_subscriber() {
        assert_eq!(
            WsUrl::builtin_ws("127.0.0.1:1".parse().unwrap(), false).path(42),
            "/ws/42"
        );
    }
}
