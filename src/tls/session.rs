//! TLS record by record over a raw non-blocking socket, for connections that frame on the raw
//! socket themselves (both sides of the WebSocket model): the caller reads and writes the
//! socket, a session turns what arrived into plaintext and what is sent into records.
//!
//! The client side uses rustls' unbuffered API: the records are decrypted from the caller's
//! read buffer (shared by the thread), so a held connection keeps only its keys and state (about
//! 3.7 KiB) and the start of a record that has not arrived whole. The buffered API would keep a
//! 4 KiB read buffer and plaintext queues per connection besides (about 6.9 KiB in all). The
//! server side keeps rustls' buffered connection, which hyper's upgrade hands back.
//!
//! rustls 0.23 still copies each received record's plaintext into a vector of its own (in-place
//! decryption is not in its unbuffered API yet), so a record costs one short-lived allocation.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus,
};
use rustls::{ClientConfig, HandshakeKind};
use tokio::net::TcpStream;

/// What a held connection's TLS does for its owner.
pub trait Records {
    /// Decrypts the records in `wire` (behind the start of a record kept from the last read)
    /// and appends their plaintext to `plain`. Handshake messages the peer wants answered
    /// (a TLS 1.3 key update) are appended to `reply`, to be written before anything else.
    /// `Ok(false)`: the peer has closed (close_notify).
    fn decrypt(
        &mut self,
        wire: &mut [u8],
        plain: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<bool, rustls::Error>;

    /// Encrypts `plain` as application data, appending the records to `wire`.
    fn encrypt(&mut self, plain: &[u8], wire: &mut Vec<u8>) -> Result<(), rustls::Error>;
}

/// The client side of a connection after its handshake.
pub struct ClientSession {
    conn: UnbufferedClientConnection,
    /// The start of a record that has not arrived whole (empty, and unallocated, otherwise).
    kept: Vec<u8>,
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Why a write into a caller's buffer did not happen.
enum Short {
    /// The buffer must have this many bytes.
    Needs(usize),
    /// Another error.
    Failed(String),
}

/// Appends to `out` what `write` puts into the space it is given (starting with `room` bytes,
/// grown to what it asks for).
fn append_grown(
    out: &mut Vec<u8>,
    room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Short>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    out.resize(start + room, 0);
    loop {
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Short::Needs(size)) => out.resize(start + size, 0),
            Err(Short::Failed(why)) => {
                out.truncate(start);
                return Err(rustls::Error::General(why));
            }
        }
    }
}

/// Appends an encoded handshake record to `out`.
fn encode_into<D>(e: &mut EncodeTlsData<'_, D>, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
    append_grown(out, 4096, |buf| match e.encode(buf) {
        Ok(n) => Ok(n),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            Err(Short::Needs(required_size))
        }
        Err(other) => Err(Short::Failed(other.to_string())),
    })
}

/// Writes all of `bytes` to a non-blocking socket, waiting for room as needed.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How a handshake went, beside the session it produced.
pub struct Handshaken {
    /// The session, ready for application data.
    pub session: ClientSession,
    /// Whether it resumed an earlier session.
    pub resumed: bool,
}

impl ClientSession {
    /// Runs a client handshake on a connected socket. Errors are rustls errors wrapped in
    /// `InvalidData` (so [`super::explain`] reads them), or the socket's.
    pub async fn connect(
        stream: &TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Handshaken> {
        let mut conn = UnbufferedClientConnection::new(config, name).map_err(invalid)?;
        let mut incoming: Vec<u8> = Vec::new();
        let mut outgoing: Vec<u8> = Vec::new();
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut incoming);
            let (mut transmit, mut read, mut done) = (false, false, false);
            match state.map_err(invalid)? {
                ConnectionState::EncodeTlsData(mut e) => {
                    encode_into(&mut e, &mut outgoing).map_err(invalid)?
                }
                // What was encoded goes out below, before the session is asked again.
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    transmit = true;
                }
                ConnectionState::BlockedHandshake => read = true,
                ConnectionState::WriteTraffic(_) => done = true,
                // A server's 0.5-RTT data: the upgrade is not sent yet, so there is none to keep.
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        record.map_err(invalid)?;
                    }
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the TLS handshake",
                    ))
                }
                _ => read = true,
            }
            incoming.drain(..discard);
            if transmit || (done && !outgoing.is_empty()) {
                write_all(stream, &outgoing).await?;
                outgoing.clear();
            }
            if done {
                let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
                // What followed the handshake (session tickets, usually) stays for the first read.
                let kept = if incoming.is_empty() {
                    Vec::new()
                } else {
                    incoming
                };
                return Ok(Handshaken {
                    session: ClientSession { conn, kept },
                    resumed,
                });
            }
            if read {
                stream.readable().await?;
                let start = incoming.len();
                incoming.resize(start + 8192, 0);
                match stream.try_read(&mut incoming[start..]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection during the TLS handshake",
                        ))
                    }
                    Ok(n) => incoming.truncate(start + n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => incoming.truncate(start),
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// The negotiated protocol version and cipher suite.
    pub fn negotiated(&self) -> super::Negotiated {
        super::Negotiated::of(&self.conn)
    }

    /// Handles every whole record at the start of `buf`; returns the bytes used and whether the
    /// peer is still open.
    fn process(
        conn: &mut UnbufferedClientConnection,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<(usize, bool), rustls::Error> {
        let mut at = 0;
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut buf[at..]);
            let mut extra = 0;
            let mut end = None;
            match state? {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        let record = record?;
                        extra += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => encode_into(&mut e, reply)?,
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::PeerClosed | ConnectionState::Closed => end = Some(false),
                // Nothing whole is left: the rest waits for more bytes.
                _ => end = Some(true),
            }
            at += discard + extra;
            if let Some(open) = end {
                return Ok((at, open));
            }
        }
    }
}

impl Records for ClientSession {
    fn decrypt(
        &mut self,
        wire: &mut [u8],
        plain: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<bool, rustls::Error> {
        if self.kept.is_empty() {
            let (used, open) = Self::process(&mut self.conn, wire, plain, reply)?;
            self.kept.extend_from_slice(&wire[used..]);
            return Ok(open);
        }
        let mut kept = std::mem::take(&mut self.kept);
        kept.extend_from_slice(wire);
        let (used, open) = Self::process(&mut self.conn, &mut kept, plain, reply)?;
        kept.drain(..used);
        if !kept.is_empty() {
            self.kept = kept;
        }
        Ok(open)
    }

    fn encrypt(&mut self, plain: &[u8], wire: &mut Vec<u8>) -> Result<(), rustls::Error> {
        // The kept bytes hold no whole record (decrypt handled those), so asking the session
        // again only finds it ready to write.
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut self.kept);
        let ConnectionState::WriteTraffic(mut w) = state? else {
            return Err(rustls::Error::General(
                "the TLS session cannot send now".into(),
            ));
        };
        append_grown(wire, plain.len() + 64, |buf| match w.encrypt(plain, buf) {
            Ok(n) => Ok(n),
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                Err(Short::Needs(required_size))
            }
            Err(other) => Err(Short::Failed(other.to_string())),
        })
    }
}

/// The server side of a connection after its handshake (hyper's upgrade hands it back).
pub struct ServerSession(rustls::ServerConnection);

impl ServerSession {
    /// Takes over a connection whose handshake is done; its send buffer is unlimited because
    /// every record is taken out at once (the owner bounds what it queues).
    pub fn new(mut conn: rustls::ServerConnection) -> Self {
        conn.set_buffer_limit(None);
        Self(conn)
    }

    /// Plaintext the session decrypted before it was handed over (bytes the client sent
    /// right behind its upgrade request).
    pub fn take_buffered(&mut self, into: &mut Vec<u8>) {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = self.0.reader().read(&mut chunk) {
            into.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Records for ServerSession {
    fn decrypt(
        &mut self,
        wire: &mut [u8],
        plain: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<bool, rustls::Error> {
        let mut rest: &[u8] = wire;
        let mut open = true;
        while !rest.is_empty() {
            self.0
                .read_tls(&mut rest)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            let state = self.0.process_new_packets()?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = plain.len();
                plain.resize(start + n, 0);
                self.0
                    .reader()
                    .read_exact(&mut plain[start..])
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            }
            open &= !state.peer_has_closed();
        }
        while self.0.wants_write() {
            let _ = self.0.write_tls(reply);
        }
        Ok(open)
    }

    fn encrypt(&mut self, plain: &[u8], wire: &mut Vec<u8>) -> Result<(), rustls::Error> {
        self.0
            .writer()
            .write_all(plain)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        while self.0.wants_write() {
            let _ = self.0.write_tls(wire);
        }
        Ok(())
    }
}
