//! The fixed part of the event each model carries, laid out once for the scenario (which checks
//! `payload_bytes` against it before anything runs) and the models (which build and read it):
//! the webhook JSON envelope (`webhook::payload` patches its digits in place) and the
//! WebSocket event header (`websocket::proto` reads and writes its fields).

/// `{"id":"` opens the webhook body.
pub const HEAD: &str = "{\"id\":\"";
/// `evt_` + 8 hex digits of the run + 16 of the event index.
pub const ID_LEN: usize = 28;
/// Between the id and `created_at`'s digits.
pub const AFTER_ID: &str = "\",\"type\":\"pushbench.event\",\"created_at\":";
/// Unix microseconds, zero-padded.
pub const CREATED_LEN: usize = 16;
/// Between `created_at` and the subscriber's digits.
pub const AFTER_CREATED: &str = ",\"subscriber\":\"";
/// The subscriber, zero-padded.
pub const SUB_LEN: usize = 10;
/// Between the subscriber and the padding.
pub const AFTER_SUB: &str = "\",\"data\":\"";
/// Closes the body after the padding.
pub const TAIL: &str = "\"}";

/// The smallest webhook body the envelope fits in.
pub const WEBHOOK_MIN_BYTES: usize = HEAD.len()
    + ID_LEN
    + AFTER_ID.len()
    + CREATED_LEN
    + AFTER_CREATED.len()
    + SUB_LEN
    + AFTER_SUB.len()
    + TAIL.len();

/// The smallest WebSocket event payload: `seq u64 | intended_us u64 | sent_us u64 | subscriber u32`.
pub const WS_EVENT_BYTES: usize = 8 + 8 + 8 + 4;
