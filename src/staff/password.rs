//! Argon2id password hashes (PHC strings, the crate's default parameters) and generated passwords.
//! Hashing and verifying are CPU-bound: callers run them in `spawn_blocking`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};

use super::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

/// Problems with a password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error(
        "a password must have at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
    )]
    Unacceptable,
    /// The hasher failed (never includes the password).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// A hash of a random password nobody knows, with the default parameters, verified when the
/// email is unknown so that the answer takes as long as for a real account.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FtZ2F0ZWR1bW15c2FsdA$ss6FRkIFwxgkONrhRSW/nM7jYAvbRF1fqMxWWdnOXmk";

/// A generated password: 144 random bits as 24 base64url characters.
pub fn generate_password() -> SecretString {
    use base64::Engine;
    use rand::RngExt;
    let bytes: [u8; 18] = rand::rng().random();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub(super) fn check_chosen(password: &SecretString) -> Result<(), PasswordError> {
    let text = password.expose_secret();
    if text.chars().count() < MIN_PASSWORD_CHARS || text.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Unacceptable);
    }
    Ok(())
}

/// The Argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &SecretString) -> Result<String, PasswordError> {
    use rand::RngExt;
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash or an oversized
/// password).
pub fn verify_password(password: &SecretString, hash: &str) -> bool {
    if password.expose_secret().len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the time of one verification against a hash no password matches.
pub(super) fn verify_dummy(password: &SecretString) {
    let _ = verify_password(password, DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let password = SecretString::from("correct horse battery staple");
        let hash = hash_password(&password).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&password, &hash));
        assert!(!verify_password(
            &SecretString::from("Correct horse battery staple"),
            &hash
        ));
        assert!(!verify_password(&password, "not a phc string"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("valid PHC string");
        let real = hash_password(&SecretString::from("x".repeat(16))).expect("hash");
        let real = PasswordHash::new(&real).expect("valid");
        assert_eq!(parsed.algorithm, real.algorithm);
        assert_eq!(parsed.version, real.version);
        assert_eq!(parsed.params, real.params);
        assert_eq!(parsed.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }

    #[test]
    fn generated_passwords_are_long_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose_secret().len(), 24);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(check_chosen(&a).is_ok());
        assert!(check_chosen(&SecretString::from("short")).is_err());
    }
}
