//! The JSON event body, built once and patched in place per delivery.
//!
//! ```json
//! {"id":"evt_<run 8 hex><index 16 hex>","type":"pushbench.event","created_at":<unix us, 16 digits>,
//!  "subscriber":"<10 digits>","data":"xxxx..."}
//! ```
//!
//! Every variable field has a fixed width, so a delivery only overwrites digits in a buffer it
//! owns: no formatting, no allocation. `data` pads the body to exactly `payload_bytes`. The id is
//! unique per run and the same across retries, so receivers can de-duplicate on it.

use crate::envelope::{
    AFTER_CREATED, AFTER_ID, AFTER_SUB, CREATED_LEN, HEAD, ID_LEN, SUB_LEN, TAIL,
};

/// The smallest body the envelope fits in.
pub use crate::envelope::WEBHOOK_MIN_BYTES as MIN_PAYLOAD_BYTES;

const ID_AT: usize = HEAD.len();
const CREATED_AT: usize = ID_AT + ID_LEN + AFTER_ID.len();
const SUB_AT: usize = CREATED_AT + CREATED_LEN + AFTER_CREATED.len();

/// A body buffer owned by one sender.
#[derive(Debug, Clone)]
pub struct Payload {
    buf: Vec<u8>,
}

impl Payload {
    /// Builds the template; `payload_bytes` must be at least [`MIN_PAYLOAD_BYTES`].
    pub fn new(payload_bytes: usize, run_id: u32) -> Self {
        let size = payload_bytes.max(MIN_PAYLOAD_BYTES);
        let mut buf = Vec::with_capacity(size);
        buf.extend_from_slice(HEAD.as_bytes());
        buf.extend_from_slice(b"evt_");
        write_hex(&mut buf, u64::from(run_id), 8);
        write_hex(&mut buf, 0, 16);
        buf.extend_from_slice(AFTER_ID.as_bytes());
        buf.extend_from_slice(&[b'0'; CREATED_LEN]);
        buf.extend_from_slice(AFTER_CREATED.as_bytes());
        buf.extend_from_slice(&[b'0'; SUB_LEN]);
        buf.extend_from_slice(AFTER_SUB.as_bytes());
        buf.resize(size - TAIL.len(), b'x');
        buf.extend_from_slice(TAIL.as_bytes());
        debug_assert_eq!(buf.len(), size);
        Self { buf }
    }

    /// Writes one delivery's fields and returns the body.
    #[inline]
    pub fn fill(&mut self, index: u64, created_at_us: u64, subscriber: u64) -> &[u8] {
        put_hex(&mut self.buf[ID_AT + 12..ID_AT + ID_LEN], index);
        put_decimal(
            &mut self.buf[CREATED_AT..CREATED_AT + CREATED_LEN],
            created_at_us,
        );
        put_decimal(&mut self.buf[SUB_AT..SUB_AT + SUB_LEN], subscriber);
        &self.buf
    }

    /// The body as last filled.
    pub fn body(&self) -> &[u8] {
        &self.buf
    }

    /// The event id as last filled (`evt_...`).
    pub fn id(&self) -> &[u8] {
        &self.buf[ID_AT..ID_AT + ID_LEN]
    }
}

fn write_hex(out: &mut Vec<u8>, v: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    put_hex(&mut out[start..], v);
}

fn put_hex(slot: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in slot.iter_mut().rev() {
        *b = DIGITS[(v & 15) as usize];
        v >>= 4;
    }
}

fn put_decimal(slot: &mut [u8], mut v: u64) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Reads the delivery index back out of an id written by [`Payload`] for `run_id`.
pub fn index_from_id(id: &[u8], run_id: u32) -> Option<u64> {
    if id.len() != ID_LEN || !id.starts_with(b"evt_") {
        return None;
    }
    let run = u32::from_str_radix(std::str::from_utf8(&id[4..12]).ok()?, 16).ok()?;
    if run != run_id {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&id[12..]).ok()?, 16).ok()
}

/// Reads the run id out of an id written by [`Payload`].
pub fn run_from_id(id: &[u8]) -> Option<u32> {
    if id.len() != ID_LEN || !id.starts_with(b"evt_") {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(&id[4..12]).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_valid_json_of_the_exact_size() {
        let mut p = Payload::new(512, 0xabcd);
        let body = p.fill(42, 1_795_000_000_123_456, 7).to_vec();
        assert_eq!(body.len(), 512);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "evt_0000abcd000000000000002a");
        assert_eq!(v["type"], "pushbench.event");
        assert_eq!(v["created_at"], 1_795_000_000_123_456u64);
        assert_eq!(v["subscriber"], "0000000007");
        assert_eq!(index_from_id(p.id(), 0xabcd), Some(42));
        assert_eq!(index_from_id(p.id(), 0xabce), None, "another run's id");
        assert_eq!(run_from_id(p.id()), Some(0xabcd));
    }

    #[test]
    fn smallest_payload_still_parses() {
        let mut p = Payload::new(MIN_PAYLOAD_BYTES, 1);
        let body = p.fill(u64::MAX, 1_795_000_000_000_000, 9_999_999_999);
        assert_eq!(body.len(), MIN_PAYLOAD_BYTES);
        serde_json::from_slice::<serde_json::Value>(body).unwrap();
    }
}
