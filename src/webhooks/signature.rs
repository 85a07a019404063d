//! Standard Webhooks secrets (`whsec_` + base64 of the key bytes) and signatures
//! (`v1,` + base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
const KEY_BYTES: usize = 32;

/// A signing secret. `Debug` prints `[redacted]`.
pub struct WebhookSecret {
    text: SecretString,
    key: SecretBox<[u8]>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// A fresh secret with 256 bits of entropy.
    pub fn generate() -> Self {
        use rand::RngExt;
        let bytes: [u8; KEY_BYTES] = rand::rng().random();
        let text = format!("{PREFIX}{}", STANDARD.encode(bytes));
        Self::parse(&text).unwrap_or_else(unreachable_secret)
    }

    /// Accepts `whsec_` + base64 of 24 to 64 bytes (what Standard Webhooks libraries accept).
    pub fn parse(text: &str) -> Option<Self> {
        let encoded = text.strip_prefix(PREFIX)?;
        let key = STANDARD.decode(encoded).ok()?;
        (24..=64).contains(&key.len()).then(|| Self {
            text: SecretString::from(text.to_owned()),
            key: SecretBox::from(key.into_boxed_slice()),
        })
    }

    /// The `whsec_…` text, for the one time it is shown and for sealing.
    pub fn expose(&self) -> &str {
        self.text.expose_secret()
    }

    fn key(&self) -> &[u8] {
        self.key.expose_secret()
    }
}

// `generate` builds a well-formed secret, so parsing it cannot fail; keep a safe value anyway.
fn unreachable_secret() -> WebhookSecret {
    WebhookSecret {
        text: SecretString::from(String::new()),
        key: SecretBox::from(vec![0u8; KEY_BYTES].into_boxed_slice()),
    }
}

/// The `webhook-signature` header value: one `v1,<base64>` per secret, space separated, so a
/// receiver holding either the old or the new secret verifies during a rotation overlap.
pub fn sign(secrets: &[WebhookSecret], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.key()).ok()?;
            mac.update(message_id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_signature_is_reproduced() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let signature = sign(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_generated_in_the_whsec_format_and_never_printed() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert!(WebhookSecret::parse(secret.expose()).is_some());
        assert!(!format!("{secret:?}").contains(secret.expose()));
        assert!(WebhookSecret::parse("whsec_short").is_none());
        assert!(WebhookSecret::parse("nope_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
    }

    #[test]
    fn every_secret_in_overlap_signs() {
        let signature = sign(
            &[WebhookSecret::generate(), WebhookSecret::generate()],
            "msg_1",
            1,
            b"{}",
        );
        assert_eq!(signature.split(' ').count(), 2);
        assert!(signature.split(' ').all(|s| s.starts_with("v1,")));
    }
}
