//! RFC 6455 framing on caller-owned buffers: encode into a `Vec` the caller reuses, parse
//! headers in place. Both sides of the harness use this instead of a per-connection reader
//! object, so an idle connection owns no read buffer at all (fastwebsockets keeps 8 KiB per
//! socket; at 100,000 sockets that alone is 800 MiB).

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// Continuation of a fragmented message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary.
    Binary,
    /// Close, with an optional code and reason.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl OpCode {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Continuation,
            1 => Self::Text,
            2 => Self::Binary,
            8 => Self::Close,
            9 => Self::Ping,
            10 => Self::Pong,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Continuation => 0,
            Self::Text => 1,
            Self::Binary => 2,
            Self::Close => 8,
            Self::Ping => 9,
            Self::Pong => 10,
        }
    }

    /// Control frames (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A parsed frame header; the payload is `buf[payload_at..payload_at + payload_len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Final fragment.
    pub fin: bool,
    /// Opcode.
    pub opcode: OpCode,
    /// Masking key, when masked (client-to-server frames).
    pub mask: Option<[u8; 4]>,
    /// Offset of the payload from the start of the frame.
    pub payload_at: usize,
    /// Payload length.
    pub payload_len: usize,
}

impl Header {
    /// Whole frame length.
    pub fn frame_len(&self) -> usize {
        self.payload_at + self.payload_len
    }
}

/// A protocol violation, mapped to a close code by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Reserved bits set or unknown opcode (close 1002).
    Protocol,
    /// Payload larger than allowed (close 1009).
    TooBig,
}

impl FrameError {
    /// The close code RFC 6455 gives this violation.
    pub fn close_code(self) -> u16 {
        match self {
            Self::Protocol => 1002,
            Self::TooBig => 1009,
        }
    }
}

/// A message that breaks RFC 6455 in what its frames say together, mapped to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// Continuation with no message started, a new message inside a fragmented one, a close
    /// payload of one byte or with a code no endpoint may send (close 1002).
    Protocol,
    /// Text (or a close reason) that is not UTF-8 (close 1007).
    InvalidUtf8,
    /// A fragmented message larger than allowed in total (close 1009).
    TooBig,
}

impl MessageError {
    /// The close code RFC 6455 gives this violation.
    pub fn close_code(self) -> u16 {
        match self {
            Self::Protocol => 1002,
            Self::InvalidUtf8 => 1007,
            Self::TooBig => 1009,
        }
    }
}

/// What a receiver must remember between the data frames of one message to check it (order,
/// total size, UTF-8 split across fragments) without buffering it: 16 bytes per connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCheck {
    /// A fragmented message is open (its first frame had FIN clear).
    open: bool,
    /// The open message is text.
    text: bool,
    /// Bytes of the open message so far.
    len: u64,
    /// The start of a UTF-8 sequence cut by a fragment boundary.
    carry: [u8; 4],
    carry_len: u8,
}

impl MessageCheck {
    /// Checks one unmasked data frame (text, binary or continuation) in arrival order.
    pub fn data_frame(
        &mut self,
        h: &Header,
        payload: &[u8],
        max_message: usize,
    ) -> Result<(), MessageError> {
        match (h.opcode, self.open) {
            (OpCode::Continuation, false) | (OpCode::Text | OpCode::Binary, true) => {
                return Err(MessageError::Protocol)
            }
            (OpCode::Continuation, true) => {}
            _ => {
                self.text = h.opcode == OpCode::Text;
                self.len = 0;
                self.carry_len = 0;
            }
        }
        self.len += payload.len() as u64;
        if self.len > max_message as u64 {
            return Err(MessageError::TooBig);
        }
        if self.text && !self.utf8(payload, h.fin) {
            return Err(MessageError::InvalidUtf8);
        }
        self.open = !h.fin;
        Ok(())
    }

    /// Validates the next piece of a text message; a sequence cut at the end of a non-final
    /// piece is kept for the next one.
    fn utf8(&mut self, mut data: &[u8], fin: bool) -> bool {
        if self.carry_len > 0 {
            let have = self.carry_len as usize;
            let width = match self.carry[0] {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let take = (width - have).min(data.len());
            self.carry[have..have + take].copy_from_slice(&data[..take]);
            self.carry_len += take as u8;
            data = &data[take..];
            if (self.carry_len as usize) < width {
                return !fin;
            }
            if std::str::from_utf8(&self.carry[..width]).is_err() {
                return false;
            }
            self.carry_len = 0;
        }
        match std::str::from_utf8(data) {
            Ok(_) => true,
            // Cut short, not wrong: the rest may come in the next fragment.
            Err(e) if e.error_len().is_none() && !fin => {
                let tail = &data[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
                true
            }
            Err(_) => false,
        }
    }
}

/// Checks a close frame's unmasked payload; returns its code (1005 when it has none).
pub fn check_close(payload: &[u8]) -> Result<u16, MessageError> {
    match payload.len() {
        0 => return Ok(1005),
        1 => return Err(MessageError::Protocol),
        _ => {}
    }
    let code = close_code(payload);
    // RFC 6455 7.4 and the IANA registry: 1004-1006 and 1015 are never sent, 1016-2999 are
    // reserved, and 5000 and up do not exist.
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !sendable {
        return Err(MessageError::Protocol);
    }
    if std::str::from_utf8(&payload[2..]).is_err() {
        return Err(MessageError::InvalidUtf8);
    }
    Ok(code)
}

/// Parses the frame at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8], max_payload: usize) -> Result<Option<Header>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x70 != 0 {
        return Err(FrameError::Protocol);
    }
    let opcode = OpCode::from_u8(buf[0] & 0x0f).ok_or(FrameError::Protocol)?;
    let fin = buf[0] & 0x80 != 0;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            (
                u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
                10,
            )
        }
        n => (n as u64, 2),
    };
    if opcode.is_control() && (len > 125 || !fin) {
        return Err(FrameError::Protocol);
    }
    if len > max_payload as u64 {
        return Err(FrameError::TooBig);
    }
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let m = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        payload_at: at,
        payload_len: len as usize,
    }))
}

/// XORs `payload` with the mask (applies and removes masking alike).
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends one unfragmented frame; `mask` is required from clients, absent from servers.
pub fn encode(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) {
    encode_frame(out, true, opcode, payload, mask);
}

/// Appends one frame, final (`fin`) or a fragment of a longer message.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    out.push(if fin { 0x80 } else { 0 } | opcode.to_u8());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len() + if mask.is_some() { 4 } else { 0 };
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m);
    }
}

/// The close code of a close frame's payload (1005 when none was given).
pub fn close_code(payload: &[u8]) -> u16 {
    if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]])
    } else {
        1005
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_class_masked_and_not() {
        for len in [0usize, 1, 125, 126, 1000, 65_535, 65_536, 200_000] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut buf = Vec::new();
                encode(&mut buf, OpCode::Binary, &payload, mask);
                let h = parse(&buf, 1 << 20).unwrap().unwrap();
                assert_eq!(
                    (h.fin, h.opcode, h.mask, h.payload_len),
                    (true, OpCode::Binary, mask, len)
                );
                assert_eq!(h.frame_len(), buf.len());
                let mut body = buf[h.payload_at..].to_vec();
                if let Some(m) = h.mask {
                    apply_mask(&mut body, m);
                }
                assert_eq!(body, payload, "len {len}");
                // Every proper prefix asks for more bytes, never misparses.
                for cut in [0, 1, h.payload_at.saturating_sub(1)] {
                    if cut < h.payload_at {
                        assert_eq!(parse(&buf[..cut], 1 << 20), Ok(None), "len {len} cut {cut}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_known_frame_from_the_rfc() {
        // RFC 6455 5.7: a single-frame masked text message "Hello".
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = parse(&frame, 100).unwrap().unwrap();
        let mut body = frame[h.payload_at..].to_vec();
        apply_mask(&mut body, h.mask.unwrap());
        assert_eq!((h.opcode, body.as_slice()), (OpCode::Text, &b"Hello"[..]));
        let mut out = Vec::new();
        encode(
            &mut out,
            OpCode::Text,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(out, frame);
    }

    #[test]
    fn violations_are_refused() {
        assert_eq!(
            parse(&[0xc2, 0x00], 10),
            Err(FrameError::Protocol),
            "RSV1 set"
        );
        assert_eq!(
            parse(&[0x83, 0x00], 10),
            Err(FrameError::Protocol),
            "opcode 3"
        );
        assert_eq!(
            parse(&[0x09, 0x00], 10),
            Err(FrameError::Protocol),
            "fragmented ping"
        );
        assert_eq!(
            parse(&[0x89, 126, 0, 200], 1000),
            Err(FrameError::Protocol),
            "long ping"
        );
        assert_eq!(
            parse(&[0x82, 126, 0x10, 0x00], 1000),
            Err(FrameError::TooBig)
        );
        assert_eq!(close_code(&[0x03, 0xe8]), 1000);
        assert_eq!(close_code(&[]), 1005);
    }

    fn data(fin: bool, opcode: OpCode, len: usize) -> Header {
        Header {
            fin,
            opcode,
            mask: None,
            payload_at: 2,
            payload_len: len,
        }
    }

    #[test]
    fn fragments_must_follow_in_order_and_stay_under_the_cap() {
        let mut m = MessageCheck::default();
        let cont = |fin, len| data(fin, OpCode::Continuation, len);
        assert_eq!(
            m.data_frame(&cont(true, 1), b"x", 10),
            Err(MessageError::Protocol),
            "continuation with nothing to continue"
        );
        let mut m = MessageCheck::default();
        m.data_frame(&data(false, OpCode::Binary, 4), b"abcd", 10)
            .unwrap();
        let mut copy = m;
        assert_eq!(
            copy.data_frame(&data(true, OpCode::Text, 1), b"x", 10),
            Err(MessageError::Protocol),
            "a new message inside a fragmented one"
        );
        m.data_frame(&cont(false, 4), b"efgh", 10).unwrap();
        assert_eq!(
            m.data_frame(&cont(true, 4), b"ijkl", 10),
            Err(MessageError::TooBig),
            "12 bytes in total over a cap of 10"
        );
    }

    #[test]
    fn text_is_utf8_even_when_a_character_spans_fragments() {
        let text = "h\u{e9}llo \u{1f600}".as_bytes();
        // Every way of cutting the message in two is accepted.
        for cut in 0..=text.len() {
            let mut m = MessageCheck::default();
            let (a, b) = text.split_at(cut);
            m.data_frame(&data(false, OpCode::Text, a.len()), a, 100)
                .unwrap_or_else(|e| panic!("cut {cut}: {e:?}"));
            m.data_frame(&data(true, OpCode::Continuation, b.len()), b, 100)
                .unwrap_or_else(|e| panic!("cut {cut}: {e:?}"));
        }
        let bad: [&[u8]; 4] = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"ok\xe2\x82"];
        for bytes in bad {
            let mut m = MessageCheck::default();
            assert_eq!(
                m.data_frame(&data(true, OpCode::Text, bytes.len()), bytes, 100),
                Err(MessageError::InvalidUtf8),
                "{bytes:?}"
            );
        }
        // A sequence cut at the end of the last fragment is invalid, not pending.
        let mut m = MessageCheck::default();
        m.data_frame(&data(false, OpCode::Text, 1), b"\xe2", 100)
            .unwrap();
        assert_eq!(
            m.data_frame(&data(true, OpCode::Continuation, 1), b"\x82", 100),
            Err(MessageError::InvalidUtf8)
        );
        // Binary is not text.
        let mut m = MessageCheck::default();
        assert_eq!(
            m.data_frame(&data(true, OpCode::Binary, 1), b"\xff", 100),
            Ok(())
        );
    }

    #[test]
    fn the_message_state_stays_small() {
        // One per held connection, and the server holds 100,000.
        assert!(std::mem::size_of::<MessageCheck>() <= 16);
    }

    #[test]
    fn close_payloads_are_checked() {
        assert_eq!(check_close(&[]), Ok(1005));
        assert_eq!(check_close(&[0x03]), Err(MessageError::Protocol));
        for ok in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert_eq!(check_close(&ok.to_be_bytes()), Ok(ok));
        }
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(
                check_close(&bad.to_be_bytes()),
                Err(MessageError::Protocol),
                "{bad}"
            );
        }
        assert_eq!(
            check_close(&[0x03, 0xe8, 0xff]),
            Err(MessageError::InvalidUtf8)
        );
        assert_eq!(check_close(b"\x03\xe8bye"), Ok(1000));
    }
}
