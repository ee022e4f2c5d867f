//! HTTP/1.1 chunked transfer coding (RFC 9112 section 7.1), decoded incrementally and without
//! copying: the chunks' data are handed on as slices of what was read. Held streaming responses
//! (server-sent events, long polls answered in pieces) arrive this way from most servers.
//! Chunk extensions are skipped and trailer fields ignored; a line may end with CRLF or a bare
//! LF, as robust parsers accept. Sizes, extensions and trailers are bounded, so a hostile peer
//! cannot make a reader grow without limit.

/// Why the coding is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk size that is not hexadecimal, or too large.
    BadSize,
    /// An extension or trailer line past the limit.
    LineTooLong,
    /// Chunk data not followed by a line end.
    BadFraming,
}

/// Where a chunked body stands after some input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// All input used; the body goes on.
    More,
    /// The body ended after `used` bytes of the input (the rest is the next message).
    Done {
        /// Input bytes that belonged to this body.
        used: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Hex digits of a chunk size.
    #[default]
    Size,
    /// After the size: an extension or white space up to the line end.
    SizeRest,
    /// Inside chunk data.
    Data,
    /// After chunk data: CR or LF expected.
    DataEnd,
    /// After chunk data and its CR: LF expected.
    DataLf,
    /// A trailer line (or the final empty line).
    Trailer,
    /// The body is over.
    Done,
}

/// Longest extension or trailer line accepted.
const MAX_LINE: u32 = 8192;

/// One chunked body's decoding state (a few words: it can sit in every held stream).
#[derive(Debug, Default)]
pub struct Dechunker {
    state: State,
    /// Chunk size being read, then data left in the chunk.
    size: u64,
    /// Digits of the size, or bytes of the current extension or trailer line.
    count: u32,
    /// The last zero-size chunk was read: trailers follow.
    last: bool,
}

impl Dechunker {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `input`, handing each run of data to `data` as it is found.
    pub fn feed(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<Step, ChunkError> {
        let mut at = 0;
        while at < input.len() {
            let b = input[at];
            match self.state {
                State::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        if self.count == 15 {
                            return Err(ChunkError::BadSize);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        self.count += 1;
                        at += 1;
                    }
                    None if self.count == 0 => return Err(ChunkError::BadSize),
                    None => {
                        self.count = 0;
                        self.state = State::SizeRest;
                    }
                },
                State::SizeRest => {
                    at += 1;
                    if b == b'\n' {
                        self.count = 0;
                        if self.size == 0 {
                            self.last = true;
                            self.state = State::Trailer;
                        } else {
                            self.state = State::Data;
                        }
                    } else {
                        self.count += 1;
                        if self.count > MAX_LINE {
                            return Err(ChunkError::LineTooLong);
                        }
                    }
                }
                State::Data => {
                    let take = ((input.len() - at) as u64).min(self.size) as usize;
                    data(&input[at..at + take]);
                    at += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataEnd;
                    }
                }
                State::DataEnd => {
                    at += 1;
                    self.state = match b {
                        b'\r' => State::DataLf,
                        b'\n' => State::Size,
                        _ => return Err(ChunkError::BadFraming),
                    };
                }
                State::DataLf => {
                    at += 1;
                    if b != b'\n' {
                        return Err(ChunkError::BadFraming);
                    }
                    self.state = State::Size;
                }
                State::Trailer => {
                    at += 1;
                    match b {
                        b'\n' if self.count == 0 => {
                            self.state = State::Done;
                            return Ok(Step::Done { used: at });
                        }
                        b'\n' => self.count = 0,
                        // A CR before the LF does not make the line non-empty.
                        b'\r' if self.count == 0 => {}
                        _ => {
                            self.count += 1;
                            if self.count > MAX_LINE {
                                return Err(ChunkError::LineTooLong);
                            }
                        }
                    }
                }
                State::Done => return Ok(Step::Done { used: at }),
            }
        }
        Ok(if self.state == State::Done {
            Step::Done { used: at }
        } else {
            Step::More
        })
    }

    /// Whether the body has ended.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the last (zero-size) chunk has been read (the trailers may still be coming).
    pub fn last_chunk_seen(&self) -> bool {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> (Vec<u8>, Result<Step, ChunkError>) {
        let mut d = Dechunker::new();
        let mut body = Vec::new();
        let mut step = Ok(Step::More);
        for p in parts {
            step = d.feed(p, |b| body.extend_from_slice(b));
            if step != Ok(Step::More) {
                break;
            }
        }
        (body, step)
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_to_the_body() {
        let wire = b"4\r\nWiki\r\n6;name=value\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let (body, step) = decode(&[wire]);
        assert_eq!(body, b"Wikipedia in \r\n\r\nchunks.");
        assert_eq!(
            step,
            Ok(Step::Done {
                used: wire.len() - 4
            }),
            "NEXT is not ours"
        );
    }

    #[test]
    fn any_split_and_bare_lf_line_ends_give_the_same_body() {
        let wire = b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n3\nxyz\n0\r\n\r\n";
        let want = b"abcdefghijklmnopqrstuvwxyzxyz".to_vec();
        for at in 0..=wire.len() {
            let (body, step) = decode(&[&wire[..at], &wire[at..]]);
            assert_eq!(body, want, "split at {at}");
            assert!(matches!(step, Ok(Step::Done { .. })), "split at {at}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let (body, step) = decode(&bytes);
        assert_eq!(body, want);
        assert_eq!(step, Ok(Step::Done { used: 1 }), "the last byte ends it");
    }

    #[test]
    fn a_held_stream_hands_data_on_as_it_comes() {
        let mut d = Dechunker::new();
        let mut got = Vec::new();
        assert_eq!(
            d.feed(b"5\r\nhello\r\n", |b| got.extend_from_slice(b)),
            Ok(Step::More)
        );
        assert_eq!(got, b"hello");
        assert!(!d.done() && !d.last_chunk_seen());
    }

    #[test]
    fn broken_codings_are_errors() {
        assert_eq!(decode(&[b"zz\r\n"]).1, Err(ChunkError::BadSize));
        assert_eq!(decode(&[b"\r\n"]).1, Err(ChunkError::BadSize));
        assert_eq!(
            decode(&[b"ffffffffffffffffff\r\n"]).1,
            Err(ChunkError::BadSize)
        );
        assert_eq!(decode(&[b"3\r\nabcX"]).1, Err(ChunkError::BadFraming));
        let long_ext = [b"3;".as_slice(), &[b'x'; 9000]].concat();
        assert_eq!(decode(&[&long_ext]).1, Err(ChunkError::LineTooLong));
    }
}
