//! Reading an HTTP/1.1 response without doing the I/O: [`ResponseReader`] is fed what has
//! arrived and says how much of it it used and whether the answer is complete. The tokio
//! connection ([`super::http::Conn`], for TLS) and the plaintext epoll loop
//! ([`super::plain`]) read their answers through it, so both frame and judge them alike.
//!
//! Bodies are framed by Content-Length, chunked encoding or the connection closing, and are
//! discarded: only the status matters to a webhook provider. Informational answers (1xx) are
//! skipped for the one after them.

use crate::record::ErrorKind;

/// What came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    /// `Retry-After` in its seconds form (the HTTP-date form is ignored).
    pub retry_after_s: Option<u32>,
}

/// Where a response is in its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Head,
    /// This many bytes of a Content-Length body are still to come.
    Body(u64),
    /// This many bytes of a chunk's data and its CRLF are still to come.
    ChunkData(u64),
    /// A chunk-size line is next.
    ChunkSize,
    /// Trailer lines, up to the empty one.
    Trailers,
    /// Everything until the peer closes is body.
    UntilClose,
}

/// One response being read. Feed it with [`advance`](Self::advance) after every read.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    part: Part,
    head: Response,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseReader {
    /// Ready for a response head.
    pub fn new() -> Self {
        Self {
            part: Part::Head,
            head: Response {
                status: 0,
                keep_alive: false,
                retry_after_s: None,
            },
        }
    }

    /// Reads what it can of `buf` (everything received and not yet used; `eof` once the peer
    /// has closed). Returns how many bytes of `buf` it used (the caller drops them) and the
    /// response once it is complete; bytes after it stay unused. A head that does not fit a
    /// full buffer, or a chunk line longer than it, is `BadResponse`; a peer that closed
    /// before the end is `Closed`.
    pub fn advance(
        &mut self,
        buf: &[u8],
        eof: bool,
        buffer_full: bool,
    ) -> Result<(usize, Option<Response>), ErrorKind> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match self.part {
                Part::Head => match parse_head(rest)? {
                    Some((len, head, part)) => {
                        used += len;
                        if (100..200).contains(&head.status) {
                            // Informational: the real answer follows.
                            continue;
                        }
                        self.head = head;
                        self.part = part;
                    }
                    None => return self.more(used, eof, buffer_full && used == 0),
                },
                Part::Body(left) | Part::ChunkData(left) => {
                    let take = left.min(rest.len() as u64);
                    used += take as usize;
                    let left = left - take;
                    match self.part {
                        Part::Body(_) if left == 0 => return Ok((used, Some(self.head))),
                        Part::Body(_) => self.part = Part::Body(left),
                        _ if left == 0 => self.part = Part::ChunkSize,
                        _ => self.part = Part::ChunkData(left),
                    }
                    if left > 0 {
                        return self.more(used, eof, false);
                    }
                }
                Part::ChunkSize => match find_crlf(rest) {
                    Some(end) => {
                        let size = chunk_size(&rest[..end])?;
                        used += end + 2;
                        self.part = if size == 0 {
                            Part::Trailers
                        } else {
                            Part::ChunkData(size + 2)
                        };
                    }
                    None => return self.more(used, eof, buffer_full && used == 0),
                },
                Part::Trailers => match find_crlf(rest) {
                    Some(end) => {
                        used += end + 2;
                        if end == 0 {
                            return Ok((used, Some(self.head)));
                        }
                    }
                    None => return self.more(used, eof, buffer_full && used == 0),
                },
                Part::UntilClose => {
                    used = buf.len();
                    if eof {
                        self.head.keep_alive = false;
                        return Ok((used, Some(self.head)));
                    }
                    return Ok((used, None));
                }
            }
        }
    }

    /// Incomplete: wait for more, unless nothing more can come or fit.
    fn more(
        &self,
        used: usize,
        eof: bool,
        stuck: bool,
    ) -> Result<(usize, Option<Response>), ErrorKind> {
        if stuck {
            Err(ErrorKind::BadResponse)
        } else if eof {
            Err(ErrorKind::Closed)
        } else {
            Ok((used, None))
        }
    }
}

/// A complete head at the start of `buf`: its length, what it says, and how its body is framed.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Response, Part)>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ErrorKind::BadResponse),
    };
    let status = resp.code.unwrap_or(0);
    let mut keep_alive = resp.version == Some(1);
    let mut part = Part::UntilClose;
    let mut retry_after_s = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(ErrorKind::BadResponse)?;
            part = Part::Body(len);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && contains_token(h.value, b"chunked")
        {
            part = Part::ChunkSize;
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after_s = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_token(h.value, b"close") {
                keep_alive = false;
            } else if contains_token(h.value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        part = Part::Body(0);
    }
    let head = Response {
        status,
        keep_alive,
        retry_after_s,
    };
    Ok(Some((len, head, part)))
}

fn chunk_size(line: &[u8]) -> Result<u64, ErrorKind> {
    let text = std::str::from_utf8(line).map_err(|_| ErrorKind::BadResponse)?;
    let text = text.split(';').next().unwrap_or("").trim();
    u64::from_str_radix(text, 16).map_err(|_| ErrorKind::BadResponse)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` `step` bytes at a time into a buffer of `cap` bytes, as a socket would
    /// deliver it, then the close; returns every response and what stopped it.
    fn read_all(wire: &[u8], step: usize, cap: usize) -> (Vec<Response>, Option<ErrorKind>) {
        let (mut buf, mut at, mut out) = (Vec::new(), 0, Vec::new());
        let mut reader = ResponseReader::new();
        loop {
            let eof = at == wire.len();
            let (used, done) = match reader.advance(&buf, eof, buf.len() == cap) {
                Ok(r) => r,
                Err(e) => return (out, Some(e)),
            };
            buf.drain(..used);
            if let Some(r) = done {
                out.push(r);
                if eof && buf.is_empty() {
                    return (out, None);
                }
                reader = ResponseReader::new();
                continue;
            }
            if eof {
                return (out, None);
            }
            let n = step.min(wire.len() - at).min(cap - buf.len());
            buf.extend_from_slice(&wire[at..at + n]);
            at += n;
        }
    }

    #[test]
    fn every_framing_reads_the_same_whole_or_a_byte_at_a_time() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
            HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;x=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n\
            HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n\
            HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n\
            HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx\
            HTTP/1.0 202 Accepted\r\n\r\nuntil close";
        let expect = [
            (200, true, None),
            (503, true, None),
            (204, false, None),
            (429, true, Some(7)),
            (201, true, None),
            (202, false, None),
        ];
        for step in [1, 2, 7, 64, wire.len()] {
            let (got, err) = read_all(wire, step, 256);
            let got: Vec<_> = got
                .iter()
                .map(|r| (r.status, r.keep_alive, r.retry_after_s))
                .collect();
            assert_eq!(got, expect, "fed {step} bytes at a time");
            assert_eq!(err, None);
        }
    }

    #[test]
    fn a_short_body_is_closed_and_an_oversized_or_garbled_head_is_bad() {
        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort";
        assert_eq!(read_all(cut, 3, 256).1, Some(ErrorKind::Closed));
        let cut_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
        assert_eq!(read_all(cut_chunk, 3, 256).1, Some(ErrorKind::Closed));
        let mut huge = b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 300));
        huge.extend_from_slice(b"\r\n\r\n");
        assert_eq!(read_all(&huge, 16, 256).1, Some(ErrorKind::BadResponse));
        assert_eq!(
            read_all(b"SMTP ready\r\n\r\n", 4, 256).1,
            Some(ErrorKind::BadResponse)
        );
        let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(read_all(bad_size, 5, 256).1, Some(ErrorKind::BadResponse));
        let (none, err) = read_all(b"", 1, 256);
        assert!(none.is_empty() && err == Some(ErrorKind::Closed));
    }
}
