//! Naming the key of a TOML syntax error. toml_edit says what is wrong and where (a byte span)
//! but not under which key, and users fix files by key; so the key is read back from the
//! source: the table header above the error and the key assigned on its line.

/// Longest key quoted in a problem; a longer one is cut (a 100 kB key would bury the message).
pub const MAX_KEY_CHARS: usize = 80;

/// The dotted key at byte `offset` of `src`, when the line there assigns one or opens a table.
pub fn key_at(src: &str, offset: usize) -> Option<String> {
    let bytes = src.as_bytes();
    let offset = offset.min(bytes.len());
    let start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| offset + i);
    // Both ends sit next to a newline (or the ends of the text), so they are char boundaries.
    let line = src[start..end].trim();
    if let Some(header) = header_of(line) {
        return Some(clip(&header));
    }
    let key = dotted(line.split_once('=')?.0)?;
    let table = src[..start].lines().rev().find_map(|l| header_of(l.trim()));
    Some(clip(&match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    }))
}

/// `[a.b]` or `[[a.b]]` -> `a.b`.
fn header_of(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    dotted(&inner[..inner.find(']')?])
}

/// A key as written (`a . "b"`), tidied to `a."b"`; `None` if it cannot be one.
fn dotted(text: &str) -> Option<String> {
    let text = text.trim();
    let plausible = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-. \"'".contains(c));
    plausible.then(|| text.split('.').map(str::trim).collect::<Vec<_>>().join("."))
}

/// Cuts `key` to [`MAX_KEY_CHARS`] characters, marking the cut.
pub fn clip(key: &str) -> String {
    match key.char_indices().nth(MAX_KEY_CHARS) {
        Some((i, _)) => format!("{}...", &key[..i]),
        None => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_key_and_its_table() {
        let src = "name = \"x\"\n[workload]\nrate = 1\nduration = \"5s\n[webhook.retry]\n  attempts = 99999999999999999999\n[[a . b]] # c\n";
        let at = |needle: &str| key_at(src, src.find(needle).unwrap());
        assert_eq!(at("\"x\"").as_deref(), Some("name"));
        assert_eq!(at("\"5s").as_deref(), Some("workload.duration"));
        assert_eq!(at("9999").as_deref(), Some("webhook.retry.attempts"));
        assert_eq!(at("[workload]").as_deref(), Some("workload"));
        assert_eq!(at("# c").as_deref(), Some("a.b"));
        assert_eq!(key_at(src, src.len() + 10), None, "past the end");
        assert_eq!(key_at("x = [\n  1,\n  {\n", 11), None, "inside a value");
        assert_eq!(key_at("\u{e9}\u{e9} = 1", 2), None, "not a key");
    }

    #[test]
    fn long_keys_are_cut() {
        assert_eq!(clip("short"), "short");
        let long = "k".repeat(1000);
        assert_eq!(clip(&long).len(), MAX_KEY_CHARS + 3);
    }
}
