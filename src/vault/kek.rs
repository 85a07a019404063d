//! Key-encryption keys: the trait a KEK provider implements, and the local AES-256-GCM one.
//!
//! A KEK only ever wraps and unwraps 32-byte data keys; it never sees a payload. The trait keeps the
//! door open for a cloud KMS (Azure Key Vault, AWS KMS) whose key bytes never reach samgate.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use super::VaultError;

/// Length of a nonce for AES-256-GCM (96 bits).
pub(crate) const NONCE_LEN: usize = 12;
/// Length of an AES-GCM authentication tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of a data key (AES-256).
pub(crate) const DEK_LEN: usize = 32;
/// Length of a data key wrapped by a [`LocalKek`]: nonce, encrypted key, tag.
pub(crate) const WRAPPED_DEK_LEN: usize = NONCE_LEN + DEK_LEN + TAG_LEN;

/// A key-encryption key that wraps and unwraps data keys, bound to associated data.
pub trait KeyEncryptionKey: Send + Sync {
    /// The KEK's id, as recorded in every value sealed under it.
    fn id(&self) -> u32;
    /// Encrypts a data key; the result must be exactly 60 bytes for format version 1.
    fn wrap(&self, dek: &[u8; DEK_LEN], aad: &[u8]) -> Result<Vec<u8>, VaultError>;
    /// Decrypts a wrapped data key, failing with [`VaultError::Integrity`] if it or `aad` was altered.
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; DEK_LEN]>, VaultError>;
}

/// A KEK held in memory (from `SAMGATE_KEKS`), zeroized on drop and never printed.
pub struct LocalKek {
    id: u32,
    // Boxed so that moving a `LocalKek` never leaves copies of the key on the stack.
    key: SecretBox<[u8; DEK_LEN]>,
}

impl LocalKek {
    /// A KEK with the given id and 32 key bytes (copied; the caller zeroizes its own buffer).
    pub fn new(id: u32, key: &[u8; DEK_LEN]) -> LocalKek {
        let key = SecretBox::init_with_mut(|slot: &mut [u8; DEK_LEN]| slot.copy_from_slice(key));
        LocalKek { id, key }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.expose_secret()))
    }
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl KeyEncryptionKey for LocalKek {
    fn id(&self) -> u32 {
        self.id
    }

    fn wrap(&self, dek: &[u8; DEK_LEN], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let nonce = random_nonce();
        let mut out = Zeroizing::new(Vec::with_capacity(WRAPPED_DEK_LEN));
        out.extend_from_slice(&nonce);
        out.extend_from_slice(dek);
        let tag = self
            .cipher()
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[NONCE_LEN..])
            .map_err(|_| VaultError::KekUnavailable {
                id: self.id,
                detail: "wrap failed".into(),
            })?;
        out.extend_from_slice(&tag);
        // The buffer now holds only nonce, ciphertext and tag: safe to hand out unzeroized.
        Ok(std::mem::take(&mut *out))
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; DEK_LEN]>, VaultError> {
        if wrapped.len() != WRAPPED_DEK_LEN {
            return Err(VaultError::Malformed);
        }
        let (nonce, rest) = wrapped.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(DEK_LEN);
        let mut dek = Zeroizing::new([0u8; DEK_LEN]);
        dek.copy_from_slice(ciphertext);
        self.cipher()
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                aad,
                &mut dek[..],
                Tag::from_slice(tag),
            )
            .map_err(|_| VaultError::Integrity)?;
        Ok(dek)
    }
}

/// A fresh random 96-bit nonce from the thread-local CSPRNG.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill(&mut nonce[..]);
    nonce
}
