//! The key format: `sgk_` + base64url (no padding) of 32 random bytes, 47 characters in all. The
//! prefix lets secret scanners recognise a leaked key; the database stores only its SHA-256.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const PREFIX: &str = "sgk_";
const RANDOM_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const ENCODED_LEN: usize = 43;
/// Characters of the body shown in listings after the prefix (24 of the 256 bits).
const SHOWN_CHARS: usize = 4;

/// A well-formed API key as a client presented it (or as samgate just generated it).
pub struct ApiKey(SecretString);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl ApiKey {
    /// A fresh key with 256 bits of entropy.
    pub(crate) fn generate() -> Self {
        use base64::Engine;
        use rand::RngExt;
        let bytes: [u8; RANDOM_BYTES] = rand::rng().random();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self(SecretString::from(format!("{PREFIX}{encoded}")))
    }

    /// Accepts only the exact shape samgate issues (prefix, length, alphabet, canonical encoding),
    /// so junk never reaches the cache or the database.
    pub fn parse(candidate: &str) -> Option<Self> {
        use base64::Engine;
        let body = candidate.strip_prefix(PREFIX)?;
        let well_formed = body.len() == ENCODED_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // The strict engine also refuses non-zero trailing bits, so each key has one spelling.
        let canonical = well_formed
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .is_ok_and(|bytes| bytes.len() == RANDOM_BYTES);
        canonical.then(|| Self(SecretString::from(candidate.to_owned())))
    }

    /// SHA-256 of the whole key: what the database stores and is searched by. A fast hash is right
    /// for a 256-bit random secret (no dictionary to attack), and the lookup is by exact hash.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.expose_secret().as_bytes()).into()
    }

    /// The non-secret start shown in listings, e.g. `sgk_AbCd`.
    pub fn display_prefix(&self) -> String {
        self.0.expose_secret()[..PREFIX.len() + SHOWN_CHARS].to_owned()
    }
}

/// A key just issued: the only time it exists in clear. `Debug` never prints it.
pub struct IssuedKey(ApiKey);

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedKey([redacted])")
    }
}

impl IssuedKey {
    pub(crate) fn new(key: ApiKey) -> Self {
        Self(key)
    }

    /// The key, to show once to the person who asked for it.
    pub fn expose_secret(&self) -> &str {
        self.0.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_differ_and_have_the_documented_shape() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        let text = a.0.expose_secret();
        assert_eq!(text.len(), 47);
        assert!(text.starts_with("sgk_"));
        assert!(ApiKey::parse(text).is_some());
        assert_ne!(text, b.0.expose_secret());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(ApiKey::parse(text).map(|k| k.hash()), Some(a.hash()));
        assert_eq!(a.display_prefix(), &text[..8]);
    }

    #[test]
    fn malformed_keys_are_refused_before_any_lookup() {
        let good = ApiKey::generate();
        let good = good.0.expose_secret();
        let body = &good[4..];
        let mut non_canonical = good.to_owned();
        // The last character carries 2 unused bits; 'B' sets one of them.
        non_canonical.replace_range(46.., "B");
        let wrong_case_prefix = format!("SGK_{body}");
        for bad in [
            "",
            "sgk_",
            &good[..good.len() - 1],
            &format!("{good}A"),
            &format!(" {good}"),
            &format!("{good}\n"),
            &format!("Bearer {good}"),
            &good.replace("sgk_", "sgi_"),
            &wrong_case_prefix,
            &format!(
                "sgk_{}",
                body.replace(|c: char| c.is_ascii_alphabetic(), "+")
            ),
            "sgk_../../../../etc/passwd0000000000000000000000",
            "sgk_%2e%2e%2f0000000000000000000000000000000000000",
            "sgk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            &non_canonical,
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_never_contains_the_key() {
        let key = ApiKey::generate();
        let text = key.0.expose_secret().to_owned();
        let issued = IssuedKey::new(key);
        assert_eq!(issued.expose_secret(), text);
        for shown in [format!("{issued:?}"), format!("{:?}", issued.0)] {
            assert!(!shown.contains(&text[4..12]), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
}
