//! The built-in push server: WebSocket at `/ws/{subscriber}` (hyper + fastwebsockets for the
//! upgrade, then lean framing on the raw socket so a held connection costs a few hundred bytes,
//! not fastwebsockets' 8 KiB read buffer) and server-sent events at `/events/{subscriber}` (a
//! held `text/event-stream` response, see [`super::sse_stream`]) and long polling at
//! `/poll/{subscriber}` (see [`super::long_poll`]). It echoes WebSocket data frames, answers
//! pings, and pushes the events the harness publishes over the control connection (see
//! [`crate::websocket::proto`]) to the subscriber's connection, stream or poll mailbox.
//!
//! One process runs one thread (a current-thread runtime and a `LocalSet`, so connection state is
//! `Rc`/`RefCell`, never locked). Several processes share one port with SO_REUSEPORT; each has
//! its own control connection and reports which subscribers it holds.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::server::TlsStream;

use super::guard::{ConnLimits, Ending, Guarded};
use super::long_poll::{self, PollSlot};
use super::sse_stream::{self, SseBody, SseConn};
use crate::record::results::ServerStats;
use crate::tls::session::ServerSession;
use crate::websocket::frame::{self, OpCode};
use crate::websocket::proto::{tag, Control, Event, CONTROL_RECORD};
use crate::websocket::wire::Wire;

mod http_push;

/// Limits of one server process.
#[derive(Debug, Clone)]
pub struct WsServerOptions {
    /// Larger messages (one frame or all fragments together) close the connection with 1009.
    pub max_message_bytes: usize,
    /// Unsent bytes a slow subscriber may accumulate before events to it are dropped.
    pub max_pending_bytes: usize,
    /// Limits on the HTTP handshake (head size and how long it may take).
    pub handshake: ConnLimits,
    /// Upgrades must carry `Authorization: Bearer <token>` or `?token=<token>`; others get 401.
    pub token: Option<String>,
    /// Serve TLS (`wss://`) with this configuration.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Default for WsServerOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_pending_bytes: 1 << 20,
            handshake: ConnLimits::default(),
            token: None,
            tls: None,
        }
    }
}

/// Why `on_frames` ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed (with this code to echo), or went away (1006).
    Closed(u16),
    /// The client broke the protocol; close with this code (1002, 1007 or 1009).
    Violation(u16),
}

struct Conn {
    id: u64,
    subscriber: u32,
    wire: Wire<ServerSession>,
    /// State of a fragmented message in progress.
    message: Cell<frame::MessageCheck>,
    wake: Notify,
    /// Set by a drop command: close code, or 0 for an abrupt reset.
    closing: Cell<Option<u16>>,
}

struct Server {
    opts: WsServerOptions,
    conns: RefCell<HashMap<u32, Rc<Conn>>>,
    stats: RefCell<ServerStats>,
    control_out: RefCell<Vec<u8>>,
    control_wake: Notify,
    next_id: Cell<u64>,
    frame_buf: RefCell<Vec<u8>>,
    payload_buf: RefCell<Vec<u8>>,
    /// A stall fault: pushes are queued, not written, until it ends (shared with the streams).
    stalled: Rc<Cell<bool>>,
    /// Server-sent event streams by subscriber.
    streams: RefCell<HashMap<u32, Rc<SseConn>>>,
    /// Long-poll mailboxes by subscriber (kept between polls).
    polls: RefCell<HashMap<u32, Rc<PollSlot>>>,
}

/// What the server answers with: a whole body (empty for an upgrade or a refusal, JSON for a
/// poll) or an event stream.
type PushBody = Either<Full<Bytes>, SseBody>;

impl Conn {
    /// Sends a frame now if the socket takes it, else queues it; false if it had to be dropped.
    fn send(&self, bytes: &[u8], max_pending: usize) -> bool {
        match self.wire.send(bytes, max_pending) {
            Some((_, wake)) => {
                if wake {
                    self.wake.notify_one();
                }
                true
            }
            None => false,
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.wire.flush()
    }
}

impl Server {
    fn control_record(&self, tag: u8, subscriber: u32) {
        let mut out = self.control_out.borrow_mut();
        out.push(tag);
        out.extend_from_slice(&subscriber.to_le_bytes());
        self.control_wake.notify_one();
    }

    /// Tells the harness `subscriber` resumed here and wants its events from `from` on.
    fn control_resume(&self, subscriber: u32, from: u64) {
        let mut out = self.control_out.borrow_mut();
        out.push(tag::RESUME);
        out.extend_from_slice(&subscriber.to_le_bytes());
        out.extend_from_slice(&from.to_le_bytes());
        self.control_wake.notify_one();
    }

    /// Handles complete frames at the start of `buf`; returns bytes consumed, or why to end the
    /// connection.
    fn on_frames(&self, conn: &Conn, buf: &mut [u8]) -> Result<usize, End> {
        // Answers to everything in this read go out in one write.
        let mut out = self.frame_buf.borrow_mut();
        out.clear();
        let (mut echoed, mut pongs) = (0, 0);
        let mut at = 0;
        let result = loop {
            let h = match frame::parse(&buf[at..], self.opts.max_message_bytes) {
                Ok(Some(h)) if buf.len() - at >= h.frame_len() => h,
                Ok(_) => break Ok(at),
                Err(e) => break Err(End::Violation(e.close_code())),
            };
            let payload = &mut buf[at + h.payload_at..at + h.frame_len()];
            // Clients must mask; servers unmask.
            let Some(mask) = h.mask else {
                break Err(End::Violation(1002));
            };
            frame::apply_mask(payload, mask);
            match h.opcode {
                OpCode::Ping => {
                    frame::encode(&mut out, OpCode::Pong, payload, None);
                    pongs += 1;
                }
                OpCode::Close => match frame::check_close(payload) {
                    Ok(1005) => break Err(End::Closed(1000)),
                    Ok(code) => break Err(End::Closed(code)),
                    Err(e) => break Err(End::Violation(e.close_code())),
                },
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    let mut message = conn.message.get();
                    let checked = message.data_frame(&h, payload, self.opts.max_message_bytes);
                    conn.message.set(message);
                    if let Err(e) = checked {
                        break Err(End::Violation(e.close_code()));
                    }
                    // Fragments go back as fragments, so a text message split mid-character
                    // is never echoed as a text frame of its own.
                    frame::encode_frame(&mut out, h.fin, h.opcode, payload, None);
                    echoed += u64::from(h.fin);
                }
                OpCode::Pong => {}
            }
            at += h.frame_len();
        };
        if !out.is_empty() {
            let mut stats = self.stats.borrow_mut();
            stats.pongs += pongs;
            if conn.send(&out, self.opts.max_pending_bytes) {
                stats.echoed += echoed;
            } else {
                stats.dropped_slow += echoed;
            }
        }
        result
    }

    /// Reads what the socket has and handles it; `Err` ends the connection.
    fn on_readable(&self, conn: &Conn) -> Result<(), End> {
        conn.wire.read_frames(
            |_| {},
            |frames| self.on_frames(conn, frames),
            || End::Closed(1006),
        )
    }

    /// `early` must be a plain copy: hyper's read buffer behind a `Bytes` would stay alive (8 KiB)
    /// for as long as the connection does.
    async fn run_conn(self: Rc<Self>, subscriber: u32, wire: Wire<ServerSession>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let conn = Rc::new(Conn {
            id,
            subscriber,
            wire,
            message: Cell::new(frame::MessageCheck::default()),
            wake: Notify::new(),
            closing: Cell::new(None),
        });
        self.conns.borrow_mut().insert(subscriber, conn.clone());
        self.stats.borrow_mut().upgrades += 1;
        self.control_record(tag::HOLD, subscriber);

        let code = self.conn_loop(&conn).await;
        if code != 0 && code != 1006 {
            let mut out = Vec::new();
            frame::encode(&mut out, OpCode::Close, &code.to_be_bytes(), None);
            let _ = conn.flush();
            let _ = conn.wire.send(&out, usize::MAX);
        }
        if code == 0 {
            // Abrupt: reset instead of a close handshake.
            let _ = socket2::SockRef::from(&conn.wire.stream)
                .set_linger(Some(std::time::Duration::ZERO));
        }
        let mut conns = self.conns.borrow_mut();
        if conns.get(&subscriber).is_some_and(|c| c.id == conn.id) {
            conns.remove(&subscriber);
            drop(conns);
            self.control_record(tag::RELEASE, conn.subscriber);
        }
    }

    /// Serves one connection; returns the close code to end with (0 = reset, 1006 = gone).
    async fn conn_loop(&self, conn: &Conn) -> u16 {
        // Bytes the client sent along with the upgrade.
        if !conn.wire.partial.borrow().is_empty() {
            let mut early = std::mem::take(&mut *conn.wire.partial.borrow_mut());
            match self.on_frames(conn, &mut early) {
                Ok(used) => *conn.wire.partial.borrow_mut() = early[used..].to_vec(),
                Err(end) => return self.ending(end),
            }
        }
        loop {
            if let Some(code) = conn.closing.get() {
                return code;
            }
            // One readiness future and one wake-up: this is what an idle connection keeps.
            // During a stall the queue only grows: waiting for writability would write it.
            let interest = if conn.wire.pending.borrow().is_empty() || self.stalled.get() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            let ready = tokio::select! {
                biased;
                _ = conn.wake.notified() => continue,
                r = conn.wire.stream.ready(interest) => r,
            };
            let Ok(ready) = ready else { return 1006 };
            if ready.is_writable() && !self.stalled.get() && conn.flush().is_err() {
                return 1006;
            }
            if ready.is_readable() || ready.is_read_closed() {
                if let Err(end) = self.on_readable(conn) {
                    return self.ending(end);
                }
            }
        }
    }

    /// Counts a connection's end; returns the code to close with.
    fn ending(&self, end: End) -> u16 {
        match end {
            End::Closed(code) => code,
            End::Violation(code) => {
                let mut stats = self.stats.borrow_mut();
                stats.protocol_errors += 1;
                match code {
                    1007 => stats.invalid_utf8 += 1,
                    1009 => stats.oversized += 1,
                    _ => stats.bad_frames += 1,
                }
                code
            }
        }
    }

    /// Counts how an HTTP connection that never upgraded ended.
    fn http_ending(&self, ending: Ending) {
        let mut stats = self.stats.borrow_mut();
        match ending {
            Ending::Normal => {}
            Ending::Malformed | Ending::HeadTooLarge => stats.malformed += 1,
            Ending::TimedOut => stats.timeouts += 1,
        }
    }

    fn publish(&self, c: &Control) {
        let conn = self.conns.borrow().get(&c.subscriber).cloned();
        let Some(conn) = conn else {
            self.publish_to_stream(c);
            return;
        };
        let len = (c.len as usize).max(crate::websocket::proto::EVENT_HEADER);
        let mut payload = self.payload_buf.borrow_mut();
        payload.resize(len, 0);
        Event {
            seq: c.seq,
            intended_us: c.intended_us,
            sent_us: c.sent_us,
            subscriber: c.subscriber,
        }
        .write(&mut payload);
        let mut out = self.frame_buf.borrow_mut();
        out.clear();
        frame::encode(&mut out, OpCode::Binary, &payload, None);
        if self.stalled.get() {
            // Held back, in order, behind whatever is already queued; sent when the stall ends.
            let mut stats = self.stats.borrow_mut();
            if conn.wire.queue(&out, self.opts.max_pending_bytes).is_some() {
                stats.pushed += 1;
                stats.held += 1;
            } else {
                stats.dropped_slow += 1;
            }
            return;
        }
        if conn.send(&out, self.opts.max_pending_bytes) {
            self.stats.borrow_mut().pushed += 1;
        } else {
            self.stats.borrow_mut().dropped_slow += 1;
        }
    }

    fn drop_connections(&self, code: u16, per_mille: u32) {
        // Spread the chosen fraction evenly over the connections (and over the streams).
        let chosen = |i: usize| (i as u64 * u64::from(per_mille)) % 1000 < u64::from(per_mille);
        let conns: Vec<Rc<Conn>> = self.conns.borrow().values().cloned().collect();
        for (i, conn) in conns.iter().enumerate() {
            if chosen(i) {
                conn.closing.set(Some(code));
                conn.wake.notify_one();
                self.stats.borrow_mut().dropped += 1;
            }
        }
        let streams: Vec<Rc<SseConn>> = self.streams.borrow().values().cloned().collect();
        for (i, stream) in streams.iter().enumerate() {
            if chosen(i) {
                stream.end(if code == 0 {
                    sse_stream::Ending::Cut
                } else {
                    sse_stream::Ending::Finish
                });
                self.stats.borrow_mut().dropped += 1;
            }
        }
        // A long poll's mailbox is lost as a restarted server loses it: the waiting poll is
        // answered empty (or its connection cut), and the next poll resumes from its cursor.
        let subs: Vec<u32> = self.polls.borrow().keys().copied().collect();
        for (i, sub) in subs.into_iter().enumerate() {
            if chosen(i) {
                self.forget(
                    sub,
                    if code == 0 {
                        long_poll::Gone::Cut
                    } else {
                        long_poll::Gone::Forgotten
                    },
                );
                self.stats.borrow_mut().dropped += 1;
            }
        }
    }

    /// Whether the server has a token and `req` does not carry it (counted as unauthorized).
    fn refuses(&self, req: &Request<Incoming>) -> bool {
        let refused = self
            .opts
            .token
            .as_ref()
            .is_some_and(|token| !authorized(req, token));
        if refused {
            self.stats.borrow_mut().unauthorized += 1;
        }
        refused
    }

    /// Holds every push for `for_us`, then lets each connection write its backlog.
    fn stall(self: Rc<Self>, for_us: u64) {
        self.stalled.set(true);
        tokio::task::spawn_local(async move {
            tokio::time::sleep(std::time::Duration::from_micros(for_us)).await;
            self.stalled.set(false);
            for conn in self.conns.borrow().values() {
                conn.wake.notify_one();
            }
            for stream in self.streams.borrow().values() {
                stream.wake();
            }
            for slot in self.polls.borrow().values() {
                slot.wake.notify_one();
            }
        });
    }

    async fn control(self: Rc<Self>, mut stream: TcpStream) {
        let mut inbuf = vec![0u8; 64 * 1024];
        let mut filled = 0;
        loop {
            tokio::select! {
                biased;
                _ = self.control_wake.notified() => {
                    let out = std::mem::take(&mut *self.control_out.borrow_mut());
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
                r = stream.read(&mut inbuf[filled..]) => {
                    let n = match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    filled += n;
                    let mut at = 0;
                    while filled - at >= CONTROL_RECORD {
                        let c = Control::read(&inbuf[at..at + CONTROL_RECORD]);
                        at += CONTROL_RECORD;
                        match c.tag {
                            tag::PUBLISH => self.publish(&c),
                            tag::DROP => self.drop_connections(c.seq as u16, c.len),
                            tag::STALL => self.clone().stall(c.seq),
                            tag::FORGET => {
                                self.forget(c.subscriber, long_poll::Gone::Forgotten)
                            }
                            tag::STATS => {
                                let mut stats = *self.stats.borrow();
                                stats.connections = (self.conns.borrow().len()
                                    + self.streams.borrow().len())
                                    as u64;
                                let json = serde_json::to_vec(&stats).expect("stats serialize");
                                let mut out = self.control_out.borrow_mut();
                                out.push(tag::STATS);
                                out.extend_from_slice(&(json.len() as u32).to_le_bytes());
                                out.extend_from_slice(&json);
                                self.control_wake.notify_one();
                            }
                            _ => return,
                        }
                    }
                    inbuf.copy_within(at..filled, 0);
                    filled -= at;
                }
            }
        }
    }
}

/// The subscriber of a `/ws/{subscriber}` (or `/events/...` with `prefix`) path.
fn subscriber_of(path: &str, prefix: &str) -> Option<u32> {
    path.strip_prefix(prefix)?
        .split(['/', '?'])
        .next()?
        .parse()
        .ok()
}

/// Whether the upgrade carries the token: `Authorization: Bearer <token>` or `token=<token>` in
/// the query. Compared in constant time.
fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    // Every byte compared whatever the first difference (the length is no secret).
    let same = |given: &[u8]| {
        given.len() == token.len()
            && given
                .iter()
                .zip(token.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(same);
    let query = req.uri().query().is_some_and(|q| {
        q.split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|t| same(t.as_bytes()))
    });
    bearer || query
}

async fn upgrade(server: Rc<Server>, mut req: Request<Incoming>) -> io::Result<Response<PushBody>> {
    let status = |s: StatusCode| {
        let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
        *r.status_mut() = s;
        Ok(r)
    };
    if req.uri().path() == "/health" {
        return status(StatusCode::OK);
    }
    if let Some(subscriber) = subscriber_of(req.uri().path(), "/events/") {
        if req.method() != hyper::Method::GET {
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        if server.refuses(&req) {
            return status(StatusCode::UNAUTHORIZED);
        }
        let last_id = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok()?.trim().parse().ok());
        return Ok(server.open_stream(subscriber, last_id));
    }
    if let Some(subscriber) = subscriber_of(req.uri().path(), "/poll/") {
        if req.method() != hyper::Method::GET {
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        if server.refuses(&req) {
            return status(StatusCode::UNAUTHORIZED);
        }
        let (cursor, timeout_ms) = long_poll::query(req.uri().query());
        let hold = std::time::Duration::from_millis(
            timeout_ms.unwrap_or(20_000).min(long_poll::MAX_HOLD_MS),
        );
        return server.long_poll(subscriber, cursor, hold).await;
    }
    let Some(subscriber) = subscriber_of(req.uri().path(), "/ws/") else {
        return status(StatusCode::NOT_FOUND);
    };
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        server.stats.borrow_mut().malformed += 1;
        return status(StatusCode::UPGRADE_REQUIRED);
    }
    if server.refuses(&req) {
        return status(StatusCode::UNAUTHORIZED);
    }
    let Ok((response, fut)) = fastwebsockets::upgrade::upgrade(&mut req) else {
        server.stats.borrow_mut().malformed += 1;
        return status(StatusCode::BAD_REQUEST);
    };
    tokio::task::spawn_local(async move {
        let Ok(ws) = fut.await else { return };
        // Keep fastwebsockets for the handshake only: take the raw socket back.
        // The handshake guard's work is done; a held connection keeps only its socket (and its
        // TLS session).
        let upgraded = ws.into_inner().into_inner();
        let wire = match upgraded.downcast::<TokioIo<Guarded<TcpStream>>>() {
            Ok(parts) => {
                let wire = Wire::new(parts.io.into_inner().into_inner(), None);
                wire.partial.borrow_mut().extend_from_slice(&parts.read_buf);
                wire
            }
            Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<Guarded<TcpStream>>>>() {
                Ok(parts) => {
                    let (guarded, conn) = parts.io.into_inner().into_inner();
                    let mut session = ServerSession::new(conn);
                    let mut early = parts.read_buf.to_vec();
                    session.take_buffered(&mut early);
                    let wire = Wire::new(guarded.into_inner(), Some(session));
                    *wire.partial.borrow_mut() = early;
                    wire
                }
                Err(_) => return,
            },
        };
        server.run_conn(subscriber, wire).await;
    });
    Ok(response.map(|_| Either::Left(Full::new(Bytes::new()))))
}

/// Serves WebSocket clients on `listener` and one harness at a time on `control`, until
/// `shutdown` completes. Must run inside a `tokio::task::LocalSet`.
pub async fn serve(
    listener: TcpListener,
    control: TcpListener,
    opts: WsServerOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server = Rc::new(Server {
        opts,
        conns: RefCell::new(HashMap::new()),
        stats: RefCell::new(ServerStats::default()),
        control_out: RefCell::new(Vec::new()),
        control_wake: Notify::new(),
        next_id: Cell::new(0),
        frame_buf: RefCell::new(Vec::new()),
        payload_buf: RefCell::new(Vec::new()),
        stalled: Rc::new(Cell::new(false)),
        streams: RefCell::new(HashMap::new()),
        polls: RefCell::new(HashMap::new()),
    });
    // RSS is this process's memory figure: once a second, hand back what the handshakes freed.
    tokio::task::spawn_local(async {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            crate::record::resources::trim_heap();
        }
    });
    let control_server = server.clone();
    tokio::task::spawn_local(async move {
        while let Ok((stream, _)) = control.accept().await {
            let _ = stream.set_nodelay(true);
            // Bounded like the publisher's side: a stream the server cannot keep up with waits
            // at the publisher (which drops what gets too old), not in kernel buffers.
            let _ = socket2::SockRef::from(&stream)
                .set_recv_buffer_size(crate::websocket::proto::CONTROL_BUFFER_BYTES);
            control_server.clone().control(stream).await;
        }
    });
    let acceptor = server.opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    super::accept_loop(listener, shutdown, move |stream| {
        let server = server.clone();
        let acceptor = acceptor.clone();
        tokio::task::spawn_local(async move {
            let limits = server.opts.handshake;
            let (stream, conn_state) = Guarded::new(stream, &limits);
            let result = match acceptor {
                None => server.clone().serve_http(stream, &conn_state).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => server.clone().serve_http(stream, &conn_state).await,
                    // A failed handshake is a connection that did not speak the protocol.
                    Err(_) => {
                        server.stats.borrow_mut().malformed += 1;
                        return;
                    }
                },
            };
            server.http_ending(Ending::of(&result, &conn_state));
        });
    })
    .await
}

impl Server {
    /// Serves HTTP on one connection (plain or TLS) until it upgrades or ends.
    async fn serve_http<I>(
        self: Rc<Self>,
        io: I,
        conn_state: &std::sync::Arc<super::guard::ConnState>,
    ) -> Result<(), hyper::Error>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.opts.handshake;
        let server = self;
        let conn = conn_state.clone();
        let service = service_fn(move |req| {
            let busy = conn.busy();
            let reply = upgrade(server.clone(), req);
            async move {
                let r = reply.await;
                drop(busy);
                r
            }
        });
        limits
            .http1()
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
            .await
    }
}

/// Binds the shared WebSocket port (SO_REUSEPORT, backlog 4096) and a private control port on
/// `control_ip` (loopback, or all of an emulated link's namespace).
pub fn bind(
    addr: std::net::SocketAddr,
    control_ip: std::net::IpAddr,
) -> io::Result<(TcpListener, TcpListener)> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(8192)?;
    let control = std::net::TcpListener::bind((control_ip, 0))?;
    control.set_nonblocking(true)?;
    Ok((listener, TcpListener::from_std(control)?))
}
