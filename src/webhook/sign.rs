//! Webhook signing schemes, as their specs publish them.
//!
//! - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`, the key
//!   being the base64 after `whsec_`.
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`.
//! - Stripe: `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256("{ts}.{body}")>`.
//!
//! Signing writes header lines into a caller's buffer from a keyed HMAC state cloned per message,
//! so the hot path allocates nothing. Verification compares in constant time (`verify_slice`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub use crate::scenario::SignatureScheme;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header is absent.
    Missing,
    /// A header is present but unreadable.
    Malformed,
    /// No signature matches.
    Mismatch,
    /// The timestamp is outside the tolerance.
    Stale,
}

/// Verifiers reject timestamps further than this from now (Standard Webhooks and Stripe: 5 min).
pub const TOLERANCE_S: u64 = 300;

/// A scheme with its keyed HMAC state.
#[derive(Clone)]
pub struct SigningKey {
    scheme: SignatureScheme,
    mac: Option<HmacSha256>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.scheme.name())
    }
}

impl SigningKey {
    /// Derives the key from the secret as the scheme defines it. The error never quotes the secret.
    pub fn new(scheme: SignatureScheme, secret: &str) -> Result<Self, String> {
        if scheme == SignatureScheme::None {
            return Ok(Self { scheme, mac: None });
        }
        let key = scheme.key_bytes(secret)?;
        let mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
        Ok(Self {
            scheme,
            mac: Some(mac),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    fn mac_of(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone().expect("signing with scheme none");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Appends the scheme's header lines (each ending in CRLF) for one message.
    pub fn write_headers(&self, out: &mut Vec<u8>, id: &[u8], timestamp_s: u64, body: &[u8]) {
        let mut ts_buf = itoa::Buffer::new();
        let ts = ts_buf.format(timestamp_s).as_bytes();
        match self.scheme {
            SignatureScheme::None => {}
            SignatureScheme::Standard => {
                let sig = self.mac_of(&[id, b".", ts, b".", body]);
                let mut b64 = [0u8; 44];
                let n = B64
                    .encode_slice(sig, &mut b64)
                    .expect("44 bytes hold 32 in base64");
                out.extend_from_slice(b"webhook-id: ");
                out.extend_from_slice(id);
                out.extend_from_slice(b"\r\nwebhook-timestamp: ");
                out.extend_from_slice(ts);
                out.extend_from_slice(b"\r\nwebhook-signature: v1,");
                out.extend_from_slice(&b64[..n]);
                out.extend_from_slice(b"\r\n");
            }
            SignatureScheme::Github => {
                let sig = self.mac_of(&[body]);
                out.extend_from_slice(b"X-GitHub-Event: pushbench.event\r\nX-GitHub-Delivery: ");
                out.extend_from_slice(id);
                out.extend_from_slice(b"\r\nX-Hub-Signature-256: sha256=");
                push_hex(out, &sig);
                out.extend_from_slice(b"\r\n");
            }
            SignatureScheme::Stripe => {
                let sig = self.mac_of(&[ts, b".", body]);
                out.extend_from_slice(b"Stripe-Signature: t=");
                out.extend_from_slice(ts);
                out.extend_from_slice(b",v1=");
                push_hex(out, &sig);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Checks a received message. `header` looks a header up by lower-case name.
    pub fn verify<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h [u8]>,
        body: &[u8],
        now_s: u64,
    ) -> Result<(), VerifyError> {
        let Some(key) = &self.mac else {
            return Ok(());
        };
        let fresh = |ts: u64| now_s.abs_diff(ts) <= TOLERANCE_S;
        match self.scheme {
            SignatureScheme::None => Ok(()),
            SignatureScheme::Standard => {
                let id = header("webhook-id").ok_or(VerifyError::Missing)?;
                let ts_raw = header("webhook-timestamp").ok_or(VerifyError::Missing)?;
                let sigs = header("webhook-signature").ok_or(VerifyError::Missing)?;
                let ts = parse_u64(ts_raw).ok_or(VerifyError::Malformed)?;
                if !fresh(ts) {
                    return Err(VerifyError::Stale);
                }
                let mut mac = key.clone();
                for p in [id, b".", ts_raw, b".", body] {
                    mac.update(p);
                }
                let candidates = sigs.split(|&b| b == b' ').filter_map(|entry| {
                    let b64 = entry.strip_prefix(b"v1,")?;
                    let mut raw = [0u8; 48];
                    let n = B64.decode_slice(b64, &mut raw).ok()?;
                    Some((raw, n))
                });
                any_matches(mac, candidates)
            }
            SignatureScheme::Github => {
                let sig = header("x-hub-signature-256").ok_or(VerifyError::Missing)?;
                let hex = sig.strip_prefix(b"sha256=").ok_or(VerifyError::Malformed)?;
                let mut mac = key.clone();
                mac.update(body);
                any_matches(mac, decode_hex(hex).into_iter())
            }
            SignatureScheme::Stripe => {
                let h = header("stripe-signature").ok_or(VerifyError::Missing)?;
                let mut ts_raw: Option<&[u8]> = None;
                for item in h.split(|&b| b == b',') {
                    if let Some(t) = item.strip_prefix(b"t=") {
                        ts_raw = Some(t);
                    }
                }
                let ts_raw = ts_raw.ok_or(VerifyError::Malformed)?;
                let ts = parse_u64(ts_raw).ok_or(VerifyError::Malformed)?;
                // Stripe only refuses old timestamps, not ones slightly in the future.
                if ts.saturating_add(TOLERANCE_S) < now_s {
                    return Err(VerifyError::Stale);
                }
                let mut mac = key.clone();
                for p in [ts_raw, b".", body] {
                    mac.update(p);
                }
                let candidates = h
                    .split(|&b| b == b',')
                    .filter_map(|item| decode_hex(item.strip_prefix(b"v1=")?));
                any_matches(mac, candidates)
            }
        }
    }
}

fn any_matches(
    mac: HmacSha256,
    candidates: impl Iterator<Item = ([u8; 48], usize)>,
) -> Result<(), VerifyError> {
    let mut seen = false;
    for (raw, n) in candidates {
        seen = true;
        // verify_slice compares in constant time.
        if mac.clone().verify_slice(&raw[..n]).is_ok() {
            return Ok(());
        }
    }
    Err(if seen {
        VerifyError::Mismatch
    } else {
        VerifyError::Malformed
    })
}

fn parse_u64(raw: &[u8]) -> Option<u64> {
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

fn decode_hex(hex: &[u8]) -> Option<([u8; 48], usize)> {
    if !hex.len().is_multiple_of(2) || hex.len() > 96 {
        return None;
    }
    let mut out = [0u8; 48];
    for (i, pair) in hex.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some((out, hex.len() / 2))
}

/// Appends lower-case hex.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
}

/// A random Standard Webhooks secret (`whsec_` + base64 of 24 random bytes) for one run.
pub fn random_secret(scheme: SignatureScheme) -> String {
    let mut bytes = [0u8; 24];
    let mut rng = crate::schedule::SplitMix64::new(
        crate::clock::real_ns() ^ u64::from(std::process::id()) << 32,
    );
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
    }
    match scheme {
        SignatureScheme::Standard => format!("whsec_{}", B64.encode(bytes)),
        _ => {
            let mut s = Vec::new();
            push_hex(&mut s, &bytes);
            String::from_utf8(s).expect("hex is ASCII")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs with `write_headers` and returns the value of one header.
    fn signed_header(key: &SigningKey, name: &str, id: &str, ts: u64, body: &str) -> String {
        let mut out = Vec::new();
        key.write_headers(&mut out, id.as_bytes(), ts, body.as_bytes());
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    fn lookup<'a>(headers: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<&'a [u8]> {
        move |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        }
    }

    #[test]
    fn standard_webhooks_published_vectors() {
        let vectors = [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            (
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ];
        for (secret, id, ts, body, expected) in vectors {
            let key = SigningKey::new(SignatureScheme::Standard, secret).unwrap();
            assert_eq!(
                signed_header(&key, "webhook-signature", id, ts, body),
                expected
            );
            let headers = [
                ("webhook-id", id.to_string()),
                ("webhook-timestamp", ts.to_string()),
                // Secret rotation: a verifier accepts when any listed signature matches.
                ("webhook-signature", format!("v1,AAAA {expected}")),
            ];
            assert_eq!(
                key.verify(lookup(&headers), body.as_bytes(), ts + 10),
                Ok(())
            );
            assert_eq!(
                key.verify(lookup(&headers), b"{\"test\": 1}", ts),
                Err(VerifyError::Mismatch)
            );
            assert_eq!(
                key.verify(lookup(&headers), body.as_bytes(), ts + TOLERANCE_S + 1),
                Err(VerifyError::Stale)
            );
        }
    }

    #[test]
    fn github_published_vector() {
        let key = SigningKey::new(SignatureScheme::Github, "It's a Secret to Everybody").unwrap();
        let header = signed_header(&key, "X-Hub-Signature-256", "d1", 0, "Hello, World!");
        assert_eq!(
            header,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let headers = [("X-Hub-Signature-256", header)];
        assert_eq!(key.verify(lookup(&headers), b"Hello, World!", 0), Ok(()));
        assert_eq!(
            key.verify(lookup(&headers), b"Hello, World?", 0),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stripe_documented_recipe() {
        let secret = "whsec_test_secret_for_stripe";
        let key = SigningKey::new(SignatureScheme::Stripe, secret).unwrap();
        let (ts, body) = (1_700_000_000u64, r#"{"id":"evt_1","object":"event"}"#);
        let header = signed_header(&key, "Stripe-Signature", "evt_1", ts, body);
        // The recipe, computed independently: HMAC-SHA256(secret, "{t}.{body}") in hex.
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let mut hex = Vec::new();
        push_hex(&mut hex, &mac.finalize().into_bytes());
        assert_eq!(
            header,
            format!("t={ts},v1={}", String::from_utf8(hex).unwrap())
        );

        let ok = [("Stripe-Signature", header.clone())];
        assert_eq!(key.verify(lookup(&ok), body.as_bytes(), ts + 60), Ok(()));
        assert_eq!(
            key.verify(lookup(&ok), b"{\"id\":\"evt_2\"}", ts),
            Err(VerifyError::Mismatch),
            "changed body"
        );
        let moved = [(
            "Stripe-Signature",
            header.replace(&ts.to_string(), &(ts + 1).to_string()),
        )];
        assert_eq!(
            key.verify(lookup(&moved), body.as_bytes(), ts),
            Err(VerifyError::Mismatch),
            "changed timestamp"
        );
        assert_eq!(
            key.verify(lookup(&ok), body.as_bytes(), ts + TOLERANCE_S + 1),
            Err(VerifyError::Stale),
            "older than the tolerance"
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        let key = SigningKey::new(SignatureScheme::Github, "s").unwrap();
        assert_eq!(key.verify(|_| None, b"x", 0), Err(VerifyError::Missing));
        let bad = [("X-Hub-Signature-256", "md5=00".to_string())];
        assert_eq!(
            key.verify(lookup(&bad), b"x", 0),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn bad_secrets_are_refused_without_quoting_them() {
        let err = SigningKey::new(SignatureScheme::Standard, "whsec_!!!not-base64").unwrap_err();
        assert!(!err.contains("not-base64"), "{err}");
        assert!(SigningKey::new(SignatureScheme::Stripe, "").is_err());
        let s = random_secret(SignatureScheme::Standard);
        assert!(SigningKey::new(SignatureScheme::Standard, &s).is_ok());
    }
}
