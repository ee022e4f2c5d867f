//! A model table's `url`: `"builtin"` or an external `http(s)://` / `ws://` url, split into
//! host, port and a path with an optional `{subscriber}` placeholder.

use super::{Cx, Section};
use crate::scenario::UrlTemplate;

/// The section's `url`: `"builtin"` (the default) or an external URL of `scheme`.
pub(super) fn target_url(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    scheme: &str,
) -> (Option<UrlTemplate>, bool) {
    let path = s.child("url");
    match cx.string(s, "url") {
        None => (None, true),
        Some(("builtin", _)) => (None, true),
        Some((text, f)) => match parse_url_with(text, scheme) {
            Ok(u) => (Some(u), false),
            Err(msg) => {
                cx.problem(f.line, &path, msg);
                (None, false)
            }
        },
    }
}

fn parse_url_with(text: &str, scheme: &str) -> Result<UrlTemplate, String> {
    let secure = if scheme == "http" { "https" } else { "wss" };
    let tls = text.starts_with(&format!("{secure}://"));
    let rest = if tls {
        text.strip_prefix(&format!("{secure}://"))
    } else {
        text.strip_prefix(&format!("{scheme}://"))
    };
    let Some(rest) = rest else {
        if text.contains("://") {
            return Err(format!(
                "unsupported scheme in \"{text}\"; these urls start with {scheme}:// or {secure}://"
            ));
        }
        return Err(format!(
            "\"{text}\" has no scheme; write \"{scheme}://{text}\" or \"builtin\""
        ));
    };
    let default_port = if tls { "443" } else { "80" };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("unclosed [ in \"{text}\""))?;
        let port = v6[end + 1..].strip_prefix(':').unwrap_or(default_port);
        (&v6[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{text}\" has no host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port \"{port}\" in \"{text}\""))?;
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the path of \"{text}\" contains spaces or control characters"
        ));
    }
    let (path_prefix, path_suffix) = match path.split_once("{subscriber}") {
        Some((a, b)) => {
            if b.contains("{subscriber}") {
                return Err("{subscriber} may appear only once".into());
            }
            (a.to_string(), Some(b.to_string()))
        }
        None => (path.to_string(), None),
    };
    Ok(UrlTemplate {
        raw: text.to_string(),
        host: host.to_string(),
        port,
        secure: tls,
        path_prefix,
        path_suffix,
    })
}
