//! A framed connection's socket, as both sides of the WebSocket model hold it after the upgrade:
//! the raw non-blocking socket, its TLS session when it has one, the bytes the socket did not
//! take yet, and the start of a frame that has not arrived whole. Reads go through one read
//! buffer per thread (and, over TLS, one plaintext buffer per thread), so an idle connection
//! owns no buffer; what the peer sent is handed to the owner's frame parser as plaintext.

use std::cell::RefCell;
use std::io;

use tokio::net::TcpStream;

use crate::tls::session::Records;

thread_local! {
    /// Read scratch for every connection of this thread: a read never awaits while holding it.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
    /// Decrypted bytes of one read, over TLS.
    static PLAIN: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(64 * 1024));
    /// Records of one send, over TLS.
    static RECORDS: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// One connection's socket and what goes with it.
pub struct Wire<S> {
    /// The socket.
    pub stream: TcpStream,
    /// Its TLS session (boxed: a plaintext connection does not carry its size).
    pub tls: Option<Box<RefCell<S>>>,
    /// Bytes not yet accepted by the socket (records, over TLS).
    pub pending: RefCell<Vec<u8>>,
    /// An incomplete frame carried over between reads (plaintext).
    pub partial: RefCell<Vec<u8>>,
}

impl<S: Records> Wire<S> {
    /// A connection with nothing buffered.
    pub fn new(stream: TcpStream, tls: Option<S>) -> Self {
        Self {
            stream,
            tls: tls.map(|s| Box::new(RefCell::new(s))),
            pending: RefCell::new(Vec::new()),
            partial: RefCell::new(Vec::new()),
        }
    }

    /// Writes `bytes` now if the socket takes them, queueing the rest behind anything already
    /// queued. Returns the bytes it put on the wire (records included) and whether they were
    /// queued on an empty queue (the owner must then be woken to finish the write). `None`: the
    /// connection is broken, or the queue would pass `max_pending` (a slow peer); nothing was
    /// sent then (over TLS no record is made, so the session's sequence stays whole).
    pub fn send(&self, bytes: &[u8], max_pending: usize) -> Option<(usize, bool)> {
        let Some(tls) = &self.tls else {
            return send_or_queue(&self.stream, &self.pending, bytes, max_pending)
                .map(|wake| (bytes.len(), wake));
        };
        if self.pending.borrow().len() + bytes.len() > max_pending {
            return None;
        }
        RECORDS.with(|records| {
            let mut records = records.borrow_mut();
            records.clear();
            tls.borrow_mut().encrypt(bytes, &mut records).ok()?;
            send_or_queue(&self.stream, &self.pending, &records, usize::MAX)
                .map(|wake| (records.len(), wake))
        })
    }

    /// Appends `bytes` to the queue without writing; returns the bytes queued (records
    /// included), or `None` if the queue would pass `max_pending`.
    pub fn queue(&self, bytes: &[u8], max_pending: usize) -> Option<usize> {
        let mut pending = self.pending.borrow_mut();
        if pending.len() + bytes.len() > max_pending {
            return None;
        }
        let before = pending.len();
        match &self.tls {
            None => pending.extend_from_slice(bytes),
            Some(tls) => tls.borrow_mut().encrypt(bytes, &mut pending).ok()?,
        }
        Some(pending.len() - before)
    }

    /// Writes queued bytes until the socket would block.
    pub fn flush(&self) -> io::Result<()> {
        flush_queue(&self.stream, &self.pending)
    }

    /// Reads what the socket has, until it would block, and hands the plaintext to `frames`
    /// behind the connection's incomplete frame; `frames` returns the bytes it used (whole
    /// frames). `on_wire` counts the bytes read from the socket. The end of the stream, a
    /// socket error, a TLS error or the peer's close_notify end the read with `gone()`.
    pub fn read_frames<E>(
        &self,
        mut on_wire: impl FnMut(usize),
        mut frames: impl FnMut(&mut [u8]) -> Result<usize, E>,
        gone: impl Fn() -> E,
    ) -> Result<(), E> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            loop {
                let n = match self.stream.try_read(&mut scratch) {
                    Ok(0) => return Err(gone()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(_) => return Err(gone()),
                };
                on_wire(n);
                let Some(tls) = &self.tls else {
                    self.hand_over(&mut scratch[..n], &mut frames)?;
                    continue;
                };
                PLAIN.with(|plain| {
                    let mut plain = plain.borrow_mut();
                    plain.clear();
                    let open = self
                        .decrypt(tls, &mut scratch[..n], &mut plain)
                        .map_err(|_| gone())?;
                    if !plain.is_empty() {
                        self.hand_over(&mut plain, &mut frames)?;
                    }
                    if open {
                        Ok(())
                    } else {
                        Err(gone())
                    }
                })?;
            }
        })
    }

    /// Reads once from the socket and appends the plaintext to `plain` (the upgrade's answer).
    /// `Ok(false)`: nothing to read now.
    pub fn read_once(&self, plain: &mut Vec<u8>) -> io::Result<bool> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = match self.stream.try_read(&mut scratch) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            match &self.tls {
                None => plain.extend_from_slice(&scratch[..n]),
                Some(tls) => {
                    if !self.decrypt(tls, &mut scratch[..n], plain)? {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
            Ok(true)
        })
    }

    /// Decrypts `raw` onto `plain` and sends at once what the session must answer (a key
    /// update). `Ok(false)`: the peer closed. A TLS error is `InvalidData`.
    fn decrypt(&self, tls: &RefCell<S>, raw: &mut [u8], plain: &mut Vec<u8>) -> io::Result<bool> {
        let mut reply = Vec::new();
        let open = tls
            .borrow_mut()
            .decrypt(raw, plain, &mut reply)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if !reply.is_empty() {
            send_or_queue(&self.stream, &self.pending, &reply, usize::MAX)
                .ok_or(io::ErrorKind::BrokenPipe)?;
        }
        Ok(open)
    }

    /// `data` behind the incomplete frame, to the parser; what it leaves is kept.
    fn hand_over<E>(
        &self,
        data: &mut [u8],
        frames: &mut impl FnMut(&mut [u8]) -> Result<usize, E>,
    ) -> Result<(), E> {
        let mut partial = self.partial.borrow_mut();
        if partial.is_empty() {
            let used = frames(data)?;
            partial.extend_from_slice(&data[used..]);
        } else {
            partial.extend_from_slice(data);
            let used = frames(&mut partial)?;
            partial.drain(..used);
            if partial.is_empty() {
                *partial = Vec::new();
            }
        }
        Ok(())
    }
}

/// Writes `bytes` now if the socket takes them and queues the rest in `pending` (behind
/// anything already queued). `Some(true)`: bytes were queued on an empty queue, so the owner must
/// be woken to finish the write when the socket is writable. `None`: the socket is broken, or
/// the queue would pass `max_pending` (a slow peer).
fn send_or_queue(
    stream: &TcpStream,
    pending: &RefCell<Vec<u8>>,
    bytes: &[u8],
    max_pending: usize,
) -> Option<bool> {
    let mut pending = pending.borrow_mut();
    if !pending.is_empty() {
        if pending.len() + bytes.len() > max_pending {
            return None;
        }
        pending.extend_from_slice(bytes);
        return Some(false);
    }
    match stream.try_write(bytes) {
        Ok(n) if n == bytes.len() => Some(false),
        Ok(n) => {
            pending.extend_from_slice(&bytes[n..]);
            Some(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            pending.extend_from_slice(bytes);
            Some(true)
        }
        Err(_) => None,
    }
}

/// Writes queued bytes until the socket would block; a large burst's memory is given back.
fn flush_queue(stream: &TcpStream, pending: &RefCell<Vec<u8>>) -> io::Result<()> {
    let mut pending = pending.borrow_mut();
    while !pending.is_empty() {
        match stream.try_write(&pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    if pending.capacity() > 64 * 1024 {
        *pending = Vec::new();
    }
    Ok(())
}
