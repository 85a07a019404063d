//! Envelope encryption of secrets at rest: AES-256-GCM data keys wrapped by versioned KEKs.
//!
//! Every sealed value has its own random data key and nonces, names its KEK and format version, and
//! is bound by associated data to its row and purpose; plaintext and data keys are zeroized after
//! use. Byte layout: `Layout` below; operator guide (generation, rotation): `docs/KEYS.md`.

mod kek;
mod ring;

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

pub use kek::{KeyEncryptionKey, LocalKek};
pub use ring::{ACTIVE_KEK_VAR, KEKS_FILE_VAR, KEKS_VAR, KeyRing, KeyRingError, generate_key};

use kek::{DEK_LEN, NONCE_LEN, TAG_LEN, WRAPPED_DEK_LEN, random_nonce};

/// The format version this code writes (and the only one it reads).
pub const FORMAT_VERSION: u8 = 1;

/// Offset of the wrapped data key, after the version byte and the u32 KEK id.
const WRAPPED_AT: usize = 1 + 4;
const PAYLOAD_NONCE_AT: usize = WRAPPED_AT + WRAPPED_DEK_LEN;
const PAYLOAD_AT: usize = PAYLOAD_NONCE_AT + NONCE_LEN;
/// The shortest sealed value: an empty payload is still a 16-byte tag.
const MIN_SEALED_LEN: usize = PAYLOAD_AT + TAG_LEN;

/// Why sealing or opening failed; messages never contain key or plaintext bytes.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Too short, or otherwise not laid out as a sealed value.
    #[error("sealed value is malformed")]
    Malformed,
    /// A format version this build does not know.
    #[error("sealed value has unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Sealed under a KEK the ring does not hold (add it back to `SAMGATE_KEKS`).
    #[error("sealed value names KEK {0}, which is not in the key ring")]
    UnknownKek(u32),
    /// Authentication failed: tampered bytes, wrong key, or wrong row or purpose.
    #[error("sealed value failed its integrity check (tampered, wrong key, or wrong row/purpose)")]
    Integrity,
    /// The opened value is not UTF-8 (from [`Vault::open_string`]).
    #[error("opened value is not valid UTF-8")]
    NotUtf8,
    /// An empty purpose or row, which would bind the ciphertext to nothing.
    #[error("seal context needs a non-empty purpose and row")]
    EmptyContext,
    /// The plaintext exceeds what AES-GCM can encrypt under one nonce.
    #[error("plaintext too large to seal")]
    TooLarge,
    /// A KEK provider (e.g. a cloud KMS) failed; `detail` must not carry key material.
    #[error("KEK {id} is unavailable: {detail}")]
    KekUnavailable {
        /// The KEK's id.
        id: u32,
        /// What the provider reported.
        detail: String,
    },
}

/// What a sealed value is bound to: its purpose (e.g. `grant.refresh_token`) and its row's key.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// What the secret is, e.g. `grant.refresh_token`.
    pub purpose: &'a str,
    /// Which row owns it, e.g. the partner's tenant id.
    pub row: &'a str,
}

/// Every kind of secret samgate seals, in one place: the purpose a sealed value is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A partner's refresh token (`grants`).
    RefreshToken,
    /// A cached access token shared between instances (`access_tokens`).
    AccessToken,
    /// A webhook endpoint's signing secret.
    WebhookSecret,
    /// A staff member's TOTP secret.
    StaffTotpSecret,
}

impl Purpose {
    /// The text bound into the associated data (stable: changing it makes stored values unopenable).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "grant.refresh_token",
            Self::AccessToken => "grant.access_token",
            Self::WebhookSecret => "webhook.secret",
            Self::StaffTotpSecret => "staff.totp_secret",
        }
    }
}

impl<'a> SealContext<'a> {
    /// A context for `purpose` and `row`.
    pub fn new(purpose: Purpose, row: &'a str) -> Self {
        SealContext {
            purpose: purpose.as_str(),
            row,
        }
    }

    fn check(&self) -> Result<(), VaultError> {
        if self.purpose.is_empty() || self.row.is_empty() {
            return Err(VaultError::EmptyContext);
        }
        Ok(())
    }
}

/// Seals and opens secrets with the key ring; cheap to clone, prints KEK ids only.
#[derive(Clone)]
pub struct Vault {
    ring: Arc<KeyRing>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("kek_ids", &self.ring.ids())
            .field("active_kek", &self.ring.active_id())
            .finish()
    }
}

impl Vault {
    /// A vault over `ring`.
    pub fn new(ring: KeyRing) -> Vault {
        Vault {
            ring: Arc::new(ring),
        }
    }

    /// Encrypts `plaintext` under a fresh data key wrapped by the active KEK, bound to `ctx`.
    pub fn seal(&self, plaintext: &[u8], ctx: &SealContext<'_>) -> Result<Sealed, VaultError> {
        ctx.check()?;
        let kek = self.ring.active();
        let kek_id = kek.id();
        let mut dek = Zeroizing::new([0u8; DEK_LEN]);
        rand::rng().fill(&mut dek[..]);
        let wrapped = wrap_checked(kek, &dek, ctx)?;
        let nonce = random_nonce();

        // Sized up front so the plaintext copy is never left behind by a reallocation.
        let mut out = Zeroizing::new(Vec::with_capacity(PAYLOAD_AT + plaintext.len() + TAG_LEN));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&kek_id.to_be_bytes());
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = payload_cipher(&dek)
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &payload_aad(ctx),
                &mut out[PAYLOAD_AT..],
            )
            .map_err(|_| VaultError::TooLarge)?;
        out.extend_from_slice(&tag);
        Ok(Sealed {
            bytes: std::mem::take(&mut *out),
            kek_id,
        })
    }

    /// Seals a secret string (see [`Vault::seal`]).
    pub fn seal_str(
        &self,
        plaintext: &SecretString,
        ctx: &SealContext<'_>,
    ) -> Result<Sealed, VaultError> {
        self.seal(plaintext.expose_secret().as_bytes(), ctx)
    }

    /// Decrypts a sealed value for `ctx`; the result is zeroized on drop.
    pub fn open(
        &self,
        sealed: &[u8],
        ctx: &SealContext<'_>,
    ) -> Result<SecretBox<[u8]>, VaultError> {
        let mut plaintext = self.open_zeroizing(sealed, ctx)?;
        // `to_vec` made capacity == length, so boxing does not reallocate and leave a copy.
        Ok(SecretBox::from(std::mem::take(&mut *plaintext)))
    }

    /// Decrypts a sealed UTF-8 value for `ctx` into a secret string.
    pub fn open_string(
        &self,
        sealed: &[u8],
        ctx: &SealContext<'_>,
    ) -> Result<SecretString, VaultError> {
        let mut plaintext = self.open_zeroizing(sealed, ctx)?;
        // Validate by reference first: `String::from_utf8`'s error would drop the bytes unzeroized.
        if std::str::from_utf8(&plaintext).is_err() {
            return Err(VaultError::NotUtf8);
        }
        let text =
            String::from_utf8(std::mem::take(&mut *plaintext)).map_err(|_| VaultError::NotUtf8)?;
        Ok(SecretString::from(text))
    }

    /// Re-wraps the data key under the active KEK; the payload is never decrypted.
    pub fn rewrap(&self, sealed: &[u8], ctx: &SealContext<'_>) -> Result<Sealed, VaultError> {
        ctx.check()?;
        let parsed = Sealed::parse(sealed)?;
        let dek = self.unwrap_dek(&parsed, ctx)?;
        let kek = self.ring.active();
        let kek_id = kek.id();
        let wrapped = wrap_checked(kek, &dek, ctx)?;
        let mut out = Vec::with_capacity(sealed.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&kek_id.to_be_bytes());
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&sealed[PAYLOAD_NONCE_AT..]);
        Ok(Sealed { bytes: out, kek_id })
    }

    /// The KEK id recorded in a sealed value's header (no key needed); for stored values, since a
    /// fresh [`Sealed`] carries its own.
    pub fn kek_id_of(sealed: &[u8]) -> Result<u32, VaultError> {
        Ok(Sealed::parse(sealed)?.kek_id)
    }

    /// Whether `sealed` is wrapped by a KEK other than the active one (i.e. `rewrap` would change it).
    pub fn needs_rewrap(&self, sealed: &[u8]) -> Result<bool, VaultError> {
        Ok(Self::kek_id_of(sealed)? != self.ring.active_id())
    }

    /// The id of the KEK new seals use.
    pub fn active_kek_id(&self) -> u32 {
        self.ring.active_id()
    }

    /// Whether the ring can open values sealed under KEK `id` (start-up checks stored rows with it).
    pub fn has_kek(&self, id: u32) -> bool {
        self.ring.contains(id)
    }

    /// The KEK ids in the ring, ascending.
    pub fn kek_ids(&self) -> Vec<u32> {
        self.ring.ids()
    }

    fn open_zeroizing(
        &self,
        sealed: &[u8],
        ctx: &SealContext<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        ctx.check()?;
        let parsed = Sealed::parse(sealed)?;
        let dek = self.unwrap_dek(&parsed, ctx)?;
        let mut plaintext = Zeroizing::new(parsed.ciphertext.to_vec());
        payload_cipher(&dek)
            .decrypt_in_place_detached(
                Nonce::from_slice(parsed.payload_nonce),
                &payload_aad(ctx),
                &mut plaintext[..],
                Tag::from_slice(parsed.tag),
            )
            .map_err(|_| VaultError::Integrity)?;
        Ok(plaintext)
    }

    fn unwrap_dek(
        &self,
        parsed: &Layout<'_>,
        ctx: &SealContext<'_>,
    ) -> Result<Zeroizing<[u8; DEK_LEN]>, VaultError> {
        let kek = self
            .ring
            .get(parsed.kek_id)
            .ok_or(VaultError::UnknownKek(parsed.kek_id))?;
        kek.unwrap(parsed.wrapped_dek, &dek_aad(parsed.kek_id, ctx))
    }
}

/// A freshly sealed (or re-wrapped) value: the bytes to store and the id of the KEK that wrapped
/// its data key, the one its header names, so a caller stores the id of the key actually used
/// rather than asking the ring again (whose active key may have changed in between).
///
/// Its `Debug` shows the length and KEK id only. It reads as its bytes (`&sealed` is a `&[u8]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The sealed value as stored (layout: `Layout`).
    pub bytes: Vec<u8>,
    /// The KEK that wrapped this value's data key (also in its header).
    pub kek_id: u32,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("len", &self.bytes.len())
            .field("kek_id", &self.kek_id)
            .finish()
    }
}

impl std::ops::Deref for Sealed {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

/// Tests tamper with sealed values in place; production code has no reason to.
#[cfg(test)]
impl std::ops::DerefMut for Sealed {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl From<Sealed> for Vec<u8> {
    fn from(sealed: Sealed) -> Vec<u8> {
        sealed.bytes
    }
}

impl Sealed {
    /// Reads the layout of sealed bytes (see `Layout`).
    fn parse(bytes: &[u8]) -> Result<Layout<'_>, VaultError> {
        Layout::parse(bytes)
    }
}

/// A parsed sealed value (format version 1); all integers big-endian:
///
/// | offset | length | field |
/// |---|---|---|
/// | 0 | 1 | format version, `0x01` |
/// | 1 | 4 | KEK id, u32 |
/// | 5 | 12 | nonce of the wrapped data key |
/// | 17 | 48 | wrapped data key: AES-256-GCM(KEK) of the 32-byte DEK, then its 16-byte tag |
/// | 65 | 12 | payload nonce |
/// | 77 | n + 16 | payload: AES-256-GCM(DEK) ciphertext of the n plaintext bytes, then its tag |
///
/// Associated data, with `lp(s)` = u64 length then UTF-8 bytes (so `("a","bc")` ≠ `("ab","c")`):
/// - wrapped DEK: `"samgate.vault.dek\0"`, version, KEK id (u32), `lp(purpose)`, `lp(row)`;
/// - payload: `"samgate.vault.payload\0"`, version, `lp(purpose)`, `lp(row)`.
///
/// The payload's associated data leaves out the KEK id on purpose, so rotation re-wraps only the
/// 60-byte DEK and never decrypts the payload; the header's KEK id and version are still
/// authenticated through the DEK's associated data, and a payload only opens under its own DEK.
struct Layout<'a> {
    kek_id: u32,
    wrapped_dek: &'a [u8],
    payload_nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Layout<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, VaultError> {
        if bytes.len() < MIN_SEALED_LEN {
            return Err(VaultError::Malformed);
        }
        if bytes[0] != FORMAT_VERSION {
            return Err(VaultError::UnsupportedVersion(bytes[0]));
        }
        let kek_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let (wrapped_dek, rest) = bytes[WRAPPED_AT..].split_at(WRAPPED_DEK_LEN);
        let (payload_nonce, payload) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = payload.split_at(payload.len() - TAG_LEN);
        Ok(Layout {
            kek_id,
            wrapped_dek,
            payload_nonce,
            ciphertext,
            tag,
        })
    }
}

fn wrap_checked(
    kek: &dyn KeyEncryptionKey,
    dek: &[u8; DEK_LEN],
    ctx: &SealContext<'_>,
) -> Result<Vec<u8>, VaultError> {
    let wrapped = kek.wrap(dek, &dek_aad(kek.id(), ctx))?;
    if wrapped.len() != WRAPPED_DEK_LEN {
        return Err(VaultError::KekUnavailable {
            id: kek.id(),
            detail: format!(
                "wrapped data key is {} bytes; format 1 needs {WRAPPED_DEK_LEN}",
                wrapped.len()
            ),
        });
    }
    Ok(wrapped)
}

fn payload_cipher(dek: &[u8; DEK_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(dek))
}

fn dek_aad(kek_id: u32, ctx: &SealContext<'_>) -> Vec<u8> {
    let mut aad = b"samgate.vault.dek\0".to_vec();
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&kek_id.to_be_bytes());
    push_context(&mut aad, ctx);
    aad
}

fn payload_aad(ctx: &SealContext<'_>) -> Vec<u8> {
    let mut aad = b"samgate.vault.payload\0".to_vec();
    aad.push(FORMAT_VERSION);
    push_context(&mut aad, ctx);
    aad
}

fn push_context(aad: &mut Vec<u8>, ctx: &SealContext<'_>) {
    for field in [ctx.purpose, ctx.row] {
        aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
}

#[cfg(test)]
mod tests;
