//! Target URLs as scenarios write them: `http://host:port/path` or `ws://...`, with an optional
//! `{subscriber}` placeholder in the path, filled per delivery or connection.

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
    /// A built-in target's URL on loopback: `scheme` (or its TLS twin when `secure`), then
    /// `prefix` and the subscriber.
    fn builtin_at(scheme: [&str; 2], port: u16, secure: bool, prefix: &str) -> Self {
        let scheme = scheme[usize::from(secure)];
        Self {
            raw: format!("{scheme}://127.0.0.1:{port}{prefix}{{subscriber}}"),
            host: "127.0.0.1".into(),
            port,
            secure,
            path_prefix: prefix.into(),
            path_suffix: Some(String::new()),
        }
    }

    /// The built-in receiver's URL on a given port (`https` when it serves TLS).
    pub fn builtin(port: u16, secure: bool) -> Self {
        Self::builtin_at(["http", "https"], port, secure, "/hooks/")
    }

    /// The built-in WebSocket server's URL on a given port (`wss://` when `secure`).
    pub fn builtin_ws(port: u16, secure: bool) -> Self {
        Self::builtin_at(["ws", "wss"], port, secure, "/ws/")
    }

    /// The built-in push server's event-stream URL on a given port (`https://` when `secure`).
    pub fn builtin_sse(port: u16, secure: bool) -> Self {
        Self::builtin_at(["http", "https"], port, secure, "/events/")
    }

    /// The built-in push server's long-poll URL on a given port (`https://` when `secure`):
    /// the cursor and the hold go in the query.
    pub fn builtin_poll(port: u16, secure: bool, hold_ms: u64) -> Self {
        let mut u = Self::builtin_at(["http", "https"], port, secure, "/poll/");
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
