//! The signing schemes a scenario (or `serve webhook --signature`) can name, and what a valid
//! secret is for each, as the specs define it. Signing and verifying live in
//! `webhook::sign`; the scenario only needs the names and the secret check, so it never
//! imports the webhook driver.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// Which signing scheme deliveries carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureScheme {
    /// Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature).
    Standard,
    /// GitHub's X-Hub-Signature-256.
    Github,
    /// Stripe's Stripe-Signature.
    Stripe,
    /// Unsigned.
    None,
}

impl SignatureScheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: [Self; 4] = [Self::Standard, Self::Github, Self::Stripe, Self::None];

    /// Name as written in scenario files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::None => "none",
        }
    }

    /// The HMAC key the scheme derives from `secret` (empty for `none`): Standard Webhooks
    /// decodes the base64 after `whsec_`, GitHub and Stripe use the secret's bytes. The error
    /// never quotes the secret.
    pub fn key_bytes(self, secret: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::None => Ok(Vec::new()),
            Self::Standard => {
                let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
                let key = B64.decode(b64).map_err(|_| {
                    "a Standard Webhooks secret is \"whsec_\" followed by base64 (the secret is not shown)".to_string()
                })?;
                if key.is_empty() {
                    return Err("the Standard Webhooks secret decodes to an empty key".into());
                }
                Ok(key)
            }
            Self::Github | Self::Stripe => {
                if secret.is_empty() {
                    return Err("the secret is empty".into());
                }
                Ok(secret.as_bytes().to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_reads_the_names_scenarios_write() {
        use clap::ValueEnum;
        for s in SignatureScheme::ALL {
            assert_eq!(s.to_possible_value().unwrap().get_name(), s.name());
            assert_eq!(SignatureScheme::from_str(s.name(), false), Ok(s));
        }
        assert!(SignatureScheme::from_str("hmac", false).is_err());
    }

    #[test]
    fn secrets_are_checked_as_each_spec_defines_them() {
        // The Standard Webhooks test vector's secret decodes to its 24-byte key.
        let key = SignatureScheme::Standard
            .key_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(key.len(), 24);
        let e = SignatureScheme::Standard
            .key_bytes("whsec_not base64!")
            .unwrap_err();
        assert!(
            !e.contains("not base64!"),
            "the error quoted the secret: {e}"
        );
        assert!(SignatureScheme::Standard.key_bytes("whsec_").is_err());
        assert_eq!(
            SignatureScheme::Github
                .key_bytes("It's a Secret to Everybody")
                .unwrap()
                .len(),
            26
        );
        assert!(SignatureScheme::Stripe.key_bytes("").is_err());
        assert_eq!(SignatureScheme::None.key_bytes("anything"), Ok(Vec::new()));
    }
}
