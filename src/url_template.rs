//! Target URLs as scenarios write them: `http://host:port/path` or `ws://...`, with an optional
//! `{subscriber}` placeholder in the path, filled per delivery or connection.

use std::net::SocketAddr;

/// An `http://host:port/path` URL with an optional `{subscriber}` placeholder in the path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UrlTemplate {
    /// The URL as written.
    pub raw: String,
    /// Host as written (name or address), used for the Host header.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `https://` or `wss://`: the connection speaks TLS.
    pub secure: bool,
    /// Path before the placeholder (or the whole path).
    pub path_prefix: String,
    /// Path after the placeholder; `None` when there is no placeholder.
    pub path_suffix: Option<String>,
}

impl UrlTemplate {
    /// A built-in target's URL at `addr` (loopback, or across an emulated link): `scheme` (or
    /// its TLS twin when `secure`), then `prefix` and the subscriber.
    fn builtin_at(scheme: [&str; 2], addr: SocketAddr, secure: bool, prefix: &str) -> Self {
        let scheme = scheme[usize::from(secure)];
        let host = addr.ip().to_string();
        let port = addr.port();
        Self {
            raw: format!("{scheme}://{addr}{prefix}{{subscriber}}"),
            host,
            port,
            secure,
            path_prefix: prefix.into(),
            path_suffix: Some(String::new()),
        }
    }

    /// The built-in receiver's URL at `addr` (`https` when it serves TLS).
    pub fn builtin(addr: SocketAddr, secure: bool) -> Self {
        Self::builtin_at(["http", "https"], addr, secure, "/hooks/")
    }

    /// The built-in WebSocket server's URL at `addr` (`wss://` when `secure`).
    pub fn builtin_ws(addr: SocketAddr, secure: bool) -> Self {
        Self::builtin_at(["ws", "wss"], addr, secure, "/ws/")
    }

    /// The built-in push server's event-stream URL at `addr` (`https://` when `secure`).
    pub fn builtin_sse(addr: SocketAddr, secure: bool) -> Self {
        Self::builtin_at(["http", "https"], addr, secure, "/events/")
    }

    /// The built-in push server's long-poll URL at `addr` (`https://` when `secure`):
    /// the cursor and the hold go in the query.
    pub fn builtin_poll(addr: SocketAddr, secure: bool, hold_ms: u64) -> Self {
        let mut u = Self::builtin_at(["http", "https"], addr, secure, "/poll/");
        let query = format!("?cursor={{cursor}}&timeout_ms={hold_ms}");
        u.raw.push_str(&query);
        u.path_suffix = Some(query);
        u
    }

    /// The request path for a subscriber.
    pub fn path(&self, subscriber: u64) -> String {
        match &self.path_suffix {
            Some(suffix) => format!("{}{subscriber}{suffix}", self.path_prefix),
            None => self.path_prefix.clone(),
        }
    }

    /// `host:port`, for connecting and for the Host header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}
