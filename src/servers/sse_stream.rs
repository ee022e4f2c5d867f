//! A held server-sent events stream of the built-in push server: hyper writes the response
//! (`text/event-stream`, chunked), its body takes what the publish path queued for the
//! subscriber, all of it at each wake. The stream ends cleanly (a drop command with a close
//! code), is cut (an abrupt drop), or ends when the client goes; then its owner is told.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame};

/// How a stream is asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Finish the response (the client sees the stream end and reconnects).
    Finish,
    /// Cut the connection without finishing the response.
    Cut,
}

/// One subscriber's stream, shared by the publish path and the response body.
pub struct SseConn {
    /// Distinguishes this stream from a later one of the same subscriber.
    pub id: u64,
    /// Events queued and not taken by the body yet.
    out: RefCell<BytesMut>,
    waker: RefCell<Option<Waker>>,
    ending: Cell<Option<Ending>>,
    /// Shared with the server: while set, queued events are held back (a stall).
    stalled: Rc<Cell<bool>>,
}

impl SseConn {
    /// A stream with nothing queued.
    pub fn new(id: u64, stalled: Rc<Cell<bool>>) -> Self {
        Self {
            id,
            out: RefCell::new(BytesMut::new()),
            waker: RefCell::new(None),
            ending: Cell::new(None),
            stalled,
        }
    }

    /// Queues bytes with `write` (unless `max_pending` bytes wait already: a slow subscriber)
    /// and wakes the body; false if they were not queued.
    pub fn push(&self, max_pending: usize, write: impl FnOnce(&mut BytesMut)) -> bool {
        let mut out = self.out.borrow_mut();
        if out.len() > max_pending {
            return false;
        }
        write(&mut out);
        drop(out);
        self.wake();
        true
    }

    /// Asks the stream to end.
    pub fn end(&self, how: Ending) {
        self.ending.set(Some(how));
        self.wake();
    }

    /// Lets the body look again (after a stall, or when something was queued).
    pub fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// The response body of a stream; `on_gone` runs when hyper lets go of it (the client left,
/// or the stream ended).
pub struct SseBody {
    conn: Rc<SseConn>,
    on_gone: Option<Box<dyn FnOnce()>>,
}

impl SseBody {
    /// The body of `conn`'s response.
    pub fn new(conn: Rc<SseConn>, on_gone: Box<dyn FnOnce()>) -> Self {
        Self {
            conn,
            on_gone: Some(on_gone),
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_gone.take() {
            f();
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let conn = &self.conn;
        match conn.ending.get() {
            Some(Ending::Cut) => {
                return Poll::Ready(Some(Err(std::io::Error::other("stream cut"))));
            }
            Some(Ending::Finish) if conn.out.borrow().is_empty() => return Poll::Ready(None),
            _ => {}
        }
        let mut out = conn.out.borrow_mut();
        if out.is_empty() || (conn.stalled.get() && conn.ending.get().is_none()) {
            *conn.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Some(Ok(Frame::data(out.split().freeze()))))
    }
}
