//! The push server's HTTP-held deliveries: server-sent event streams and long polls (their
//! routes are in the parent's `upgrade`), fed by the same publish path as WebSocket pushes.

use super::*;

impl Server {
    /// An event for a subscriber that holds a stream (or a poll mailbox) here, if one does.
    pub(super) fn publish_to_stream(&self, c: &Control) {
        let e = Event {
            seq: c.seq,
            intended_us: c.intended_us,
            sent_us: c.sent_us,
            subscriber: c.subscriber,
        };
        let stream = self.streams.borrow().get(&c.subscriber).cloned();
        let Some(stream) = stream else {
            let slot = self.polls.borrow().get(&c.subscriber).cloned();
            let mut stats = self.stats.borrow_mut();
            match slot {
                Some(slot) if slot.push(e, c.len, self.opts.max_pending_bytes) => {
                    stats.pushed += 1;
                    if self.stalled.get() {
                        stats.held += 1;
                    }
                }
                Some(_) => stats.dropped_slow += 1,
                None => stats.not_connected += 1,
            }
            return;
        };
        let mut stats = self.stats.borrow_mut();
        let queued = stream.push(self.opts.max_pending_bytes, |out| {
            crate::sse::event::write(out, &e, c.len as usize)
        });
        if !queued {
            stats.dropped_slow += 1;
            return;
        }
        stats.pushed += 1;
        if self.stalled.get() {
            stats.held += 1;
        }
    }

    /// Lets go of `subscriber`'s poll mailbox here.
    pub(super) fn forget(&self, subscriber: u32, how: long_poll::Gone) {
        let slot = self.polls.borrow_mut().remove(&subscriber);
        if let Some(slot) = slot {
            slot.gone.set(Some(how));
            slot.wake.notify_one();
        }
    }

    /// Answers one long poll: at once when events wait after `cursor`, else when one arrives or
    /// `hold` runs out. A poll for a subscriber new here tells the harness, which routes its
    /// events here and replays what came after the cursor.
    pub(super) async fn long_poll(
        self: Rc<Self>,
        subscriber: u32,
        cursor: Option<u64>,
        hold: std::time::Duration,
    ) -> io::Result<Response<PushBody>> {
        let existing = self.polls.borrow().get(&subscriber).cloned();
        let slot = match existing {
            Some(slot) => slot,
            // Mailboxes outlive their polls: a client inventing subscribers must not grow them
            // without bound.
            None if self.polls.borrow().len() >= long_poll::MAX_MAILBOXES => {
                self.stats.borrow_mut().malformed += 1;
                let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return Ok(r);
            }
            None => {
                let id = self.next_id.get();
                self.next_id.set(id + 1);
                let slot = Rc::new(PollSlot::new(id));
                self.polls.borrow_mut().insert(subscriber, slot.clone());
                self.control_resume(subscriber, cursor.map_or(0, |c| c.saturating_add(1)));
                slot
            }
        };
        if let Some(c) = cursor {
            slot.confirm(c);
        }
        let me = self.next_id.get();
        self.next_id.set(me + 1);
        slot.current_poll.set(me);
        // A newer poll of the subscriber is answered instead of this one.
        slot.wake.notify_one();
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            match slot.gone.get() {
                Some(long_poll::Gone::Cut) => return Err(io::Error::other("dropped")),
                Some(long_poll::Gone::Forgotten) => break,
                None => {}
            }
            if slot.current_poll.get() != me {
                break;
            }
            if slot.has_events() && !self.stalled.get() {
                break;
            }
            tokio::select! {
                _ = slot.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let (body, n) = if slot.gone.get().is_some() || slot.current_poll.get() != me {
            (Vec::from(*b"{\"cursor\":null,\"events\":[]}"), 0)
        } else {
            slot.answer(cursor)
        };
        {
            let mut stats = self.stats.borrow_mut();
            stats.polls += 1;
            if n == 0 {
                stats.empty_polls += 1;
            }
        }
        let mut r = Response::new(Either::Left(Full::new(Bytes::from(body))));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(r)
    }

    /// Opens `subscriber`'s event stream (replacing an older one of the same subscriber),
    /// resuming after event `last_id` when the client sent one.
    pub(super) fn open_stream(
        self: &Rc<Self>,
        subscriber: u32,
        last_id: Option<u64>,
    ) -> Response<PushBody> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let conn = Rc::new(SseConn::new(id, self.stalled.clone()));
        if let Some(old) = self.streams.borrow_mut().insert(subscriber, conn.clone()) {
            old.end(sse_stream::Ending::Finish);
        }
        self.stats.borrow_mut().streams += 1;
        match last_id {
            // What was published after it (while the stream was down) comes first.
            Some(id) => self.control_resume(subscriber, id.saturating_add(1)),
            None => self.control_record(tag::HOLD, subscriber),
        }
        let server = self.clone();
        let body = SseBody::new(
            conn,
            Box::new(move || {
                let mut streams = server.streams.borrow_mut();
                if streams.get(&subscriber).is_some_and(|s| s.id == id) {
                    streams.remove(&subscriber);
                    drop(streams);
                    server.control_record(tag::RELEASE, subscriber);
                }
            }),
        );
        let mut r = Response::new(Either::Right(body));
        let h = r.headers_mut();
        h.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        h.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-cache"),
        );
        r
    }
}
