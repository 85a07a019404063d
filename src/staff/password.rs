//! Argon2id password hashes (PHC strings, the crate's default parameters) and generated passwords.
//! Hashing and verifying are CPU-bound: callers run them in `spawn_blocking`, and sign-in runs them
//! through [`Argon2Limit`], so a flood of sign-ins cannot occupy every core or queue for ever.

use std::sync::Arc;
use std::time::Duration;

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

/// How long a sign-in waits for an Argon2 slot before it is told to try again.
pub const ARGON2_MAX_WAIT: Duration = Duration::from_secs(3);

/// Too many Argon2 checks are running and queued: the caller answers "try again" (503).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("every Argon2 slot stayed busy for {} s", ARGON2_MAX_WAIT.as_secs())]
pub struct Argon2Busy;

/// Bounds the Argon2 checks running at once (one per two cores, at least one): the rest of the
/// process keeps cores to answer, and a check waits at most [`ARGON2_MAX_WAIT`] for a slot.
#[derive(Debug, Clone)]
pub struct Argon2Limit {
    slots: Arc<tokio::sync::Semaphore>,
    capacity: usize,
    max_wait: Duration,
}

impl Argon2Limit {
    /// A limit of `capacity` concurrent checks, each waiting at most `max_wait` for a slot.
    pub fn new(capacity: usize, max_wait: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(capacity)),
            capacity,
            max_wait,
        }
    }

    /// Half of this machine's cores (at least one), waiting [`ARGON2_MAX_WAIT`].
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(cores / 2, ARGON2_MAX_WAIT)
    }

    /// How many checks may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many checks are running now (or slots held by [`Argon2Limit::hold`]).
    pub fn in_use(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Takes one slot, waiting at most the limit's wait (also for tests that fill the slots).
    pub async fn hold(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Argon2Busy> {
        tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| Argon2Busy)?
            .map_err(|_| Argon2Busy)
    }

    /// Runs `check` on a blocking thread once a slot is free. The slot goes with the thread, so
    /// a client that disconnects does not free it while the check still runs.
    pub async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Result<T, PasswordError>, Argon2Busy> {
        let slot = self.hold().await?;
        Ok(tokio::task::spawn_blocking(move || {
            let result = check();
            drop(slot);
            result
        })
        .await
        .map_err(|e| PasswordError::Hashing(e.to_string())))
    }
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

    #[tokio::test]
    async fn the_argon2_limit_runs_at_most_its_capacity_and_refuses_after_the_wait() {
        let limit = Argon2Limit::new(2, Duration::from_millis(50));
        assert_eq!(limit.capacity(), 2);
        let held = [
            limit.hold().await.expect("slot"),
            limit.hold().await.expect("slot"),
        ];
        assert_eq!(limit.in_use(), 2);
        assert!(limit.run(|| 1).await.is_err(), "no slot within the wait");
        drop(held);
        assert_eq!(limit.run(|| 1).await.ok().and_then(Result::ok), Some(1));
        assert_eq!(limit.in_use(), 0);
        assert_eq!(Argon2Limit::new(0, Duration::ZERO).capacity(), 1);
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
