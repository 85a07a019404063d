//! The second factor's arithmetic: RFC 6238 codes (HMAC-SHA-1, 6 digits, 30 s steps, one step of
//! skew either way) over a 160-bit secret samgate draws itself, and recovery codes (80 random bits,
//! shown once, stored as a SHA-256 bound to the member). Nothing here touches the database; the
//! caller remembers the last accepted step so that a code works once.

use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};
use uuid::Uuid;
use zeroize::Zeroizing;

/// Seconds per time step (RFC 6238 §5.2).
pub const STEP_SECONDS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u8 = 6;
/// Steps accepted before and after the current one (clock drift, typing time).
pub const SKEW_STEPS: u16 = 1;
/// Length of the secret: 160 bits, as RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;
/// Recovery codes given at enrolment (and at each regeneration).
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Bytes of randomness in a recovery code (16 base32 characters).
const RECOVERY_CODE_BYTES: usize = 10;

/// A member's TOTP secret in memory: zeroized on drop, never printed.
pub struct TotpSecret(Zeroizing<[u8; SECRET_BYTES]>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// A fresh secret from the operating system's generator.
    pub fn generate() -> Self {
        use rand::RngExt;
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        rand::rng().fill(&mut bytes[..]);
        Self(bytes)
    }

    /// The secret from its raw bytes (as the vault opens them); `None` for a wrong length.
    pub fn from_bytes(bytes: &SecretBox<[u8]>) -> Option<Self> {
        let raw: [u8; SECRET_BYTES] = bytes.expose_secret().try_into().ok()?;
        Some(Self(Zeroizing::new(raw)))
    }

    /// The raw bytes, for the vault only.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0[..]
    }

    fn totp(&self, issuer: Option<&str>, account: &str) -> Result<Totp, totp_rs::TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECONDS)
            .with_secret(*self.0)
            .with_issuer(issuer.map(|i| i.replace(':', " ")))
            .with_account_name(account.replace(':', " "))
            .build()
    }

    /// The secret in base32 (RFC 4648, no padding), as authenticator apps take it by hand.
    pub fn base32(&self) -> SecretString {
        base32(&self.0[..])
    }

    /// The `otpauth://totp/…` URI that authenticator apps import (it contains the secret).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<SecretString, String> {
        self.totp(Some(issuer), account)
            .and_then(|t| t.to_url())
            .map(SecretString::from)
            .map_err(|e| e.to_string())
    }

    /// The time step `code` belongs to at `unix_time`, within the skew; `None` when it matches
    /// none (or is not six digits). The comparison runs in constant time.
    pub fn matching_step(&self, code: &str, unix_time: i64) -> Option<u64> {
        let time = u64::try_from(unix_time).ok()?;
        let code = code.trim();
        if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp(None, "").ok()?.check(code, time)
    }

    /// The code of the step that contains `unix_time` (the demo prints one; tests type them).
    pub fn code_at(&self, unix_time: i64) -> Option<String> {
        let time = u64::try_from(unix_time).ok()?;
        Some(self.totp(None, "").ok()?.generate(time).to_string())
    }
}

/// RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> SecretString {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    for chunk in bytes.chunks(5) {
        let mut group = [0u8; 8];
        group[3..3 + chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes(group);
        for i in 0..(chunk.len() * 8).div_ceil(5) {
            let index = (bits >> (35 - 5 * i)) & 0x1f;
            out.push(char::from(ALPHABET[index as usize]));
        }
        group.fill(0);
    }
    SecretString::from(out)
}

/// What a member typed at the second step.
pub enum TypedCode {
    /// Six digits: a TOTP code.
    Totp(String),
    /// A recovery code, normalised (upper case, no separators).
    Recovery(SecretString),
    /// Neither.
    Malformed,
}

impl std::fmt::Debug for TypedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Totp(_) => "TypedCode::Totp([redacted])",
            Self::Recovery(_) => "TypedCode::Recovery([redacted])",
            Self::Malformed => "TypedCode::Malformed",
        })
    }
}

impl PartialEq for TypedCode {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Totp(a), Self::Totp(b)) => a == b,
            (Self::Recovery(a), Self::Recovery(b)) => a.expose_secret() == b.expose_secret(),
            (Self::Malformed, Self::Malformed) => true,
            _ => false,
        }
    }
}

impl TypedCode {
    /// Tells a TOTP code from a recovery code; spaces, dashes and case are ignored, and in a
    /// recovery code 0, 1 and 8 read as O, I and B.
    pub fn parse(input: &str) -> Self {
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        let base32 = |c: u8| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c);
        if compact.len() == usize::from(DIGITS) && compact.bytes().all(|b| b.is_ascii_digit()) {
            Self::Totp(compact)
        } else if compact.len() == RECOVERY_CODE_BYTES * 8 / 5 {
            // Base32 has no 0, 1 or 8: a person who typed one meant O, I or B.
            let read: String = compact
                .chars()
                .map(|c| match c {
                    '0' => 'O',
                    '1' => 'I',
                    '8' => 'B',
                    other => other,
                })
                .collect();
            if read.bytes().all(base32) {
                Self::Recovery(SecretString::from(read))
            } else {
                Self::Malformed
            }
        } else {
            Self::Malformed
        }
    }
}

/// New recovery codes, formatted for people (`ABCD-EFGH-IJKL-MNOP`); shown once.
pub fn generate_recovery_codes() -> Vec<SecretString> {
    use rand::RngExt;
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
            rand::rng().fill(&mut bytes[..]);
            let encoded = base32(&bytes[..]);
            let symbols = encoded.expose_secret();
            let groups: Vec<&str> = (0..4).map(|i| &symbols[i * 4..i * 4 + 4]).collect();
            SecretString::from(groups.join("-"))
        })
        .collect()
}

/// The stored form of a recovery code: SHA-256 over the member's id and the normalised code. The
/// code has 80 random bits, so no slow hash is needed to make a leaked hash useless, and checking
/// one costs no Argon2 time at sign-in.
pub fn recovery_code_hash(staff_id: Uuid, code: &SecretString) -> Vec<u8> {
    let normalised = match TypedCode::parse(code.expose_secret()) {
        TypedCode::Recovery(normalised) => normalised,
        _ => SecretString::from(code.expose_secret().to_owned()),
    };
    let mut hasher = Sha256::new();
    hasher.update(b"samgate-recovery-code:");
    hasher.update(staff_id.as_bytes());
    hasher.update(normalised.expose_secret().as_bytes());
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        // RFC 6238 Appendix B's SHA-1 key: "12345678901234567890".
        TotpSecret(Zeroizing::new(*b"12345678901234567890"))
    }

    #[test]
    fn codes_follow_the_rfc_6238_test_vectors() {
        let secret = rfc_secret();
        // Appendix B gives 8 digits; the 6-digit code is its last six.
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(secret.code_at(time).as_deref(), Some(&eight[2..]), "{time}");
        }
        assert_eq!(
            secret.base32().expose_secret(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn a_code_matches_its_step_and_one_step_either_side_only() {
        let secret = rfc_secret();
        let now = 1_234_567_890_i64;
        let step = u64::try_from(now).expect("positive") / STEP_SECONDS;
        let code = secret.code_at(now).expect("code");
        assert_eq!(secret.matching_step(&code, now), Some(step));
        assert_eq!(secret.matching_step(&code, now + 30), Some(step));
        assert_eq!(secret.matching_step(&code, now - 30), Some(step));
        assert_eq!(secret.matching_step(&code, now + 60), None);
        assert_eq!(secret.matching_step(&code, now - 60), None);
        assert_eq!(secret.matching_step("12345", now), None);
        assert_eq!(secret.matching_step("abcdef", now), None);
        assert_eq!(secret.matching_step("", now), None);
    }

    #[test]
    fn typed_codes_are_told_apart_and_normalised() {
        assert_eq!(
            TypedCode::parse(" 123 456 "),
            TypedCode::Totp("123456".into())
        );
        let TypedCode::Recovery(code) = TypedCode::parse("abcd-efgh-2345-mnop") else {
            panic!("a recovery code");
        };
        assert_eq!(code.expose_secret(), "ABCDEFGH2345MNOP");
        assert_eq!(
            TypedCode::parse("0ld1-8ABC-DEFG-HIJK"),
            TypedCode::parse("OLDI-BABC-DEFG-HIJK")
        );
        for bad in [
            "",
            "12345",
            "1234567",
            "ABCD-EFGH-IJKL",
            "ABCD-EFGH-IJKL-MNO9",
        ] {
            assert_eq!(TypedCode::parse(bad), TypedCode::Malformed, "{bad}");
        }
        assert!(!format!("{:?}", TypedCode::parse("123456")).contains("123456"));
    }

    #[test]
    fn recovery_codes_are_distinct_well_formed_and_hashed_per_member() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        let texts: std::collections::HashSet<&str> =
            codes.iter().map(|c| c.expose_secret()).collect();
        assert_eq!(texts.len(), RECOVERY_CODE_COUNT);
        for code in &codes {
            assert_eq!(code.expose_secret().len(), 19);
            assert!(matches!(
                TypedCode::parse(code.expose_secret()),
                TypedCode::Recovery(_)
            ));
        }
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let lower = SecretString::from(codes[0].expose_secret().to_lowercase().replace('-', " "));
        assert_eq!(
            recovery_code_hash(a, &codes[0]),
            recovery_code_hash(a, &lower)
        );
        assert_ne!(
            recovery_code_hash(a, &codes[0]),
            recovery_code_hash(b, &codes[0])
        );
    }

    #[test]
    fn secrets_are_random_and_never_printed() {
        let (a, b) = (TotpSecret::generate(), TotpSecret::generate());
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_eq!(a.base32().expose_secret().len(), 32);
        assert!(!format!("{a:?}").contains(a.base32().expose_secret()));
        let uri = a
            .otpauth_uri("Northwind: Control Panel", "ada@northwind.example")
            .expect("uri");
        assert!(uri.expose_secret().starts_with("otpauth://totp/"));
        assert!(uri.expose_secret().contains(a.base32().expose_secret()));
    }
}
