//! Why an attempt or a connection failed, as a small counter index: the kinds every model
//! counts (webhook attempts, WebSocket connects), named as the results files name them.

use std::io;

/// Why an attempt failed, as a small counter index (no strings on the hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorKind {
    /// Connection refused.
    Refused = 0,
    /// Connection reset or broken pipe.
    Reset,
    /// The attempt ran past the timeout.
    Timeout,
    /// The peer closed before a full response.
    Closed,
    /// The response could not be parsed.
    BadResponse,
    /// Another socket error (no ports, no descriptors...).
    Io,
    /// 4xx other than 408, 410 and 429: not retried.
    Status4xx,
    /// 5xx or 408: retried.
    Status5xx,
    /// 429 Too Many Requests: retried, after `Retry-After` when given.
    Status429,
    /// 410 Gone: the endpoint is disabled; never retried.
    Status410,
    /// No local port left to connect from (EADDRNOTAVAIL): the ephemeral range is used up.
    NoPorts,
    /// No file descriptor left (EMFILE/ENFILE): the open-files limit is reached.
    NoFiles,
    /// The TLS handshake failed (certificate, protocol, or the peer hung up in it).
    Tls,
    /// A WebSocket upgrade refused with 401 or 403 (missing or wrong credentials).
    Auth,
}

impl ErrorKind {
    /// All kinds, in counter order.
    pub const ALL: [ErrorKind; 14] = [
        Self::Refused,
        Self::Reset,
        Self::Timeout,
        Self::Closed,
        Self::BadResponse,
        Self::Io,
        Self::Status4xx,
        Self::Status5xx,
        Self::Status429,
        Self::Status410,
        Self::NoPorts,
        Self::NoFiles,
        Self::Tls,
        Self::Auth,
    ];

    /// Name used in results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::BadResponse => "bad_response",
            Self::Io => "io",
            Self::Status4xx => "status_4xx",
            Self::Status5xx => "status_5xx",
            Self::Status429 => "status_429",
            Self::Status410 => "status_410",
            Self::NoPorts => "no_ports",
            Self::NoFiles => "no_files",
            Self::Tls => "tls",
            Self::Auth => "auth",
        }
    }

    /// Whether a provider should try again after this.
    pub fn retryable(self) -> bool {
        !matches!(self, Self::Status4xx | Self::Status410 | Self::BadResponse)
    }

    /// Classifies a socket error.
    pub fn from_io(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EADDRNOTAVAIL) => return Self::NoPorts,
            Some(libc::EMFILE | libc::ENFILE) => return Self::NoFiles,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Reset,
            io::ErrorKind::UnexpectedEof => Self::Closed,
            io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Io,
        }
    }

    /// A failed TLS handshake: the socket's kind when the socket failed, else `Tls`.
    pub fn from_handshake(e: &io::Error) -> Self {
        match Self::from_io(e) {
            Self::Io => Self::Tls,
            kind => kind,
        }
    }
}
