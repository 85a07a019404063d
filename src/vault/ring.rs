//! The key ring: versioned KEKs from `SAMGATE_KEKS` (or `SAMGATE_KEKS_FILE`), one of them active.
//!
//! Entries are `id:base64key` (standard base64 of exactly 32 bytes, id a positive integer). Errors
//! name the variable and the entry's id or position, never the key text. See `docs/KEYS.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use rand::RngExt;
use zeroize::Zeroizing;

use super::kek::{DEK_LEN, KeyEncryptionKey, LocalKek};

/// Environment variable holding the KEK entries inline.
pub const KEKS_VAR: &str = "SAMGATE_KEKS";
/// Environment variable naming a file that holds the KEK entries.
pub const KEKS_FILE_VAR: &str = "SAMGATE_KEKS_FILE";
/// Environment variable naming the active KEK id (default: the highest id).
pub const ACTIVE_KEK_VAR: &str = "SAMGATE_ACTIVE_KEK";

/// Why a key ring could not be built; messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// No entries at all.
    #[error("{var} holds no key-encryption keys; generate one with `samgate keys generate`")]
    Empty {
        /// The variable (or source) that was read.
        var: &'static str,
    },
    /// An entry without the `id:base64key` shape.
    #[error("{var}: entry #{position} is not of the form `id:base64key`")]
    EntryShape {
        /// The variable (or source) that was read.
        var: &'static str,
        /// 1-based position of the entry.
        position: usize,
    },
    /// An id that is not a positive integer fitting in 32 bits.
    #[error("{var}: entry #{position} has an id that is not a positive integer below 2^32")]
    BadId {
        /// The variable (or source) that was read.
        var: &'static str,
        /// 1-based position of the entry.
        position: usize,
    },
    /// A key that is not valid standard base64.
    #[error(
        "{var}: KEK {id} is not valid standard base64 (generate one with `samgate keys generate`)"
    )]
    BadBase64 {
        /// The variable (or source) that was read.
        var: &'static str,
        /// The entry's KEK id.
        id: u32,
    },
    /// A key that does not decode to exactly 32 bytes.
    #[error("{var}: KEK {id} decodes to {len} bytes; a KEK must be exactly 32 bytes")]
    WrongLength {
        /// The variable (or source) that was read.
        var: &'static str,
        /// The entry's KEK id.
        id: u32,
        /// The decoded length.
        len: usize,
    },
    /// The same id twice.
    #[error("{var}: KEK id {id} appears more than once")]
    DuplicateId {
        /// The variable (or source) that was read.
        var: &'static str,
        /// The repeated KEK id.
        id: u32,
    },
    /// `SAMGATE_ACTIVE_KEK` is not a positive integer.
    #[error("SAMGATE_ACTIVE_KEK is not a positive integer")]
    BadActive,
    /// `SAMGATE_ACTIVE_KEK` names an id the ring lacks.
    #[error(
        "SAMGATE_ACTIVE_KEK names KEK {id}, which {var} does not contain (ids present: {present:?})"
    )]
    ActiveMissing {
        /// The variable (or source) that was read.
        var: &'static str,
        /// The requested active id.
        id: u32,
        /// The ids the ring does have.
        present: Vec<u32>,
    },
    /// The KEK file could not be read.
    #[error("SAMGATE_KEKS_FILE ({}) cannot be read: {source}", path.display())]
    File {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Versioned key-encryption keys, one of them active for new seals; cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    keks: BTreeMap<u32, Arc<dyn KeyEncryptionKey>>,
    active: Arc<dyn KeyEncryptionKey>,
}

impl KeyRing {
    /// Parses `SAMGATE_KEKS` (comma- or newline-separated `id:base64key`) and `SAMGATE_ACTIVE_KEK`.
    pub fn parse(keks: &str, active: Option<&str>) -> Result<KeyRing, KeyRingError> {
        parse_entries(KEKS_VAR, keks, active)
    }

    /// Reads the same format from the file `SAMGATE_KEKS_FILE` names (`#` starts a comment line).
    pub fn from_file(path: &Path, active: Option<&str>) -> Result<KeyRing, KeyRingError> {
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| KeyRingError::File {
                path: path.to_owned(),
                source,
            })?;
        parse_entries(KEKS_FILE_VAR, &text, active)
    }

    /// Builds a ring from KEK providers (e.g. a cloud KMS); `active` defaults to the highest id.
    pub fn from_keks(
        keks: Vec<Arc<dyn KeyEncryptionKey>>,
        active: Option<u32>,
    ) -> Result<KeyRing, KeyRingError> {
        build("key ring", keks, active)
    }

    /// The KEK ids in the ring, ascending.
    pub fn ids(&self) -> Vec<u32> {
        self.keks.keys().copied().collect()
    }

    /// The id of the KEK that wraps new data keys.
    pub fn active_id(&self) -> u32 {
        self.active.id()
    }

    /// Whether the ring holds a KEK with this id.
    pub fn contains(&self, id: u32) -> bool {
        self.keks.contains_key(&id)
    }

    pub(crate) fn get(&self, id: u32) -> Option<&dyn KeyEncryptionKey> {
        self.keks.get(&id).map(|kek| &**kek)
    }

    pub(crate) fn active(&self) -> &dyn KeyEncryptionKey {
        &*self.active
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("kek_ids", &self.ids())
            .field("active", &self.active_id())
            .finish()
    }
}

/// A new KEK: standard base64 of 32 random bytes, as printed by `samgate keys generate`.
pub fn generate_key() -> String {
    let mut key = Zeroizing::new([0u8; DEK_LEN]);
    rand::rng().fill(&mut key[..]);
    BASE64_STANDARD.encode(&key[..])
}

fn parse_entries(
    var: &'static str,
    text: &str,
    active: Option<&str>,
) -> Result<KeyRing, KeyRingError> {
    let entries = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    let mut keks: Vec<Arc<dyn KeyEncryptionKey>> = Vec::new();
    let mut seen = Vec::new();
    for (index, entry) in entries.enumerate() {
        let position = index + 1;
        let (id, key) = entry
            .split_once(':')
            .ok_or(KeyRingError::EntryShape { var, position })?;
        let id = parse_id(id.trim()).ok_or(KeyRingError::BadId { var, position })?;
        if seen.contains(&id) {
            return Err(KeyRingError::DuplicateId { var, id });
        }
        seen.push(id);
        let decoded = BASE64_STANDARD
            .decode(key.trim())
            .map(Zeroizing::new)
            .map_err(|_| KeyRingError::BadBase64 { var, id })?;
        let bytes =
            <&[u8; DEK_LEN]>::try_from(&decoded[..]).map_err(|_| KeyRingError::WrongLength {
                var,
                id,
                len: decoded.len(),
            })?;
        keks.push(Arc::new(LocalKek::new(id, bytes)));
    }
    let active = match active.map(str::trim).filter(|value| !value.is_empty()) {
        Some(value) => Some(parse_id(value).ok_or(KeyRingError::BadActive)?),
        None => None,
    };
    build(var, keks, active)
}

fn build(
    var: &'static str,
    keks: Vec<Arc<dyn KeyEncryptionKey>>,
    active: Option<u32>,
) -> Result<KeyRing, KeyRingError> {
    let mut ring = BTreeMap::new();
    for kek in keks {
        let id = kek.id();
        if id == 0 {
            return Err(KeyRingError::BadId {
                var,
                position: ring.len() + 1,
            });
        }
        if ring.insert(id, kek).is_some() {
            return Err(KeyRingError::DuplicateId { var, id });
        }
    }
    let highest = *ring.keys().next_back().ok_or(KeyRingError::Empty { var })?;
    let active_id = active.unwrap_or(highest);
    let active = ring
        .get(&active_id)
        .cloned()
        .ok_or_else(|| KeyRingError::ActiveMissing {
            var,
            id: active_id,
            present: ring.keys().copied().collect(),
        })?;
    Ok(KeyRing { keks: ring, active })
}

/// A positive decimal id; rejects signs, spaces and zero so `+1` or `01x` are not silently accepted.
fn parse_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn parse_err(keks: &str, active: Option<&str>) -> KeyRingError {
        match KeyRing::parse(keks, active) {
            Ok(ring) => panic!("expected an error, got {ring:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn a_ring_defaults_to_the_highest_id_as_active() {
        let ring = KeyRing::parse(&format!("2:{KEY_B}, 1:{KEY_A}"), None).expect("valid");
        assert_eq!(ring.ids(), vec![1, 2]);
        assert_eq!(ring.active_id(), 2);
        let ring = KeyRing::parse(&format!("2:{KEY_B},1:{KEY_A}"), Some("1")).expect("valid");
        assert_eq!(ring.active_id(), 1);
        let ring =
            KeyRing::parse(&format!("1:{KEY_A}"), Some("  ")).expect("blank active = default");
        assert_eq!(ring.active_id(), 1);
    }

    #[test]
    fn newline_separated_entries_and_comments_are_accepted() {
        let text = format!("# samgate KEKs, 600 permissions\n1:{KEY_A}\n\n  2:{KEY_B}  \n");
        let ring = KeyRing::parse(&text, None).expect("valid");
        assert_eq!(ring.ids(), vec![1, 2]);
    }

    #[test]
    fn each_malformed_ring_is_refused_naming_the_variable_and_never_the_key() {
        let short = "c2hvcnQta2V5"; // "short-key"
        let long = BASE64_STANDARD.encode([7u8; 33]);
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            (String::new(), None, "holds no key-encryption keys"),
            (" , ,\n".to_owned(), None, "holds no key-encryption keys"),
            (KEY_A.to_owned(), None, "entry #1 is not of the form"),
            (
                format!("0:{KEY_A}"),
                None,
                "entry #1 has an id that is not a positive integer",
            ),
            (format!("-1:{KEY_A}"), None, "entry #1 has an id"),
            (format!("+1:{KEY_A}"), None, "entry #1 has an id"),
            (format!("x:{KEY_A}"), None, "entry #1 has an id"),
            (format!("4294967296:{KEY_A}"), None, "entry #1 has an id"),
            (
                format!("1:{KEY_A},2:{KEY_A}!"),
                None,
                "KEK 2 is not valid standard base64",
            ),
            (
                format!("1:{}", KEY_A.replace('=', "")),
                None,
                "KEK 1 is not valid standard base64",
            ),
            (format!("3:{short}"), None, "KEK 3 decodes to 9 bytes"),
            (format!("3:{long}"), None, "KEK 3 decodes to 33 bytes"),
            (
                format!("1:{KEY_A},1:{KEY_B}"),
                None,
                "KEK id 1 appears more than once",
            ),
            (
                format!("1:{KEY_A}"),
                Some("2"),
                "names KEK 2, which SAMGATE_KEKS does not contain",
            ),
            (
                format!("1:{KEY_A}"),
                Some(KEY_A),
                "SAMGATE_ACTIVE_KEK is not a positive integer",
            ),
        ];
        for (keks, active, expected) in cases {
            let message = parse_err(&keks, active).to_string();
            assert!(message.contains(expected), "{keks:?}: {message}");
            assert!(
                message.contains("SAMGATE_KEKS") || message.contains("SAMGATE_ACTIVE_KEK"),
                "{message}"
            );
            for secret in [KEY_A, KEY_B, short, long.as_str(), "AAECAwQF", "ICEiIyQl"] {
                assert!(!message.contains(secret), "{message} leaks key text");
            }
        }
    }

    #[test]
    fn a_key_ring_file_is_read_and_its_errors_name_the_file_variable() {
        let dir = std::env::temp_dir().join(format!("samgate-kek-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("keks");
        std::fs::write(&good, format!("# rotated 2025-01\n1:{KEY_A}\n2:{KEY_B}\n")).expect("write");
        let ring = KeyRing::from_file(&good, Some("1")).expect("valid file");
        assert_eq!((ring.ids(), ring.active_id()), (vec![1, 2], 1));

        let bad = dir.join("bad");
        std::fs::write(&bad, "1:c2hvcnQta2V5\n").expect("write");
        let message = KeyRing::from_file(&bad, None)
            .expect_err("short")
            .to_string();
        assert!(
            message.contains("SAMGATE_KEKS_FILE: KEK 1 decodes to 9 bytes"),
            "{message}"
        );
        assert!(!message.contains("c2hvcnQta2V5"), "{message}");

        let missing = dir.join("absent");
        let message = KeyRing::from_file(&missing, None)
            .expect_err("missing")
            .to_string();
        assert!(
            message.contains("SAMGATE_KEKS_FILE") && message.contains("absent"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn generated_keys_parse_as_distinct_32_byte_keys() {
        let first = generate_key();
        let second = generate_key();
        assert_ne!(first, second);
        let decoded = BASE64_STANDARD.decode(&first).expect("standard base64");
        assert_eq!(decoded.len(), 32);
        let ring =
            KeyRing::parse(&format!("1:{first},2:{second}"), None).expect("generated keys parse");
        assert_eq!(ring.ids(), vec![1, 2]);
    }

    #[test]
    fn from_keks_refuses_id_zero_duplicates_and_an_empty_ring() {
        let kek = |id| -> Arc<dyn KeyEncryptionKey> { Arc::new(LocalKek::new(id, &[9u8; 32])) };
        assert!(matches!(
            KeyRing::from_keks(vec![], None),
            Err(KeyRingError::Empty { .. })
        ));
        assert!(matches!(
            KeyRing::from_keks(vec![kek(0)], None),
            Err(KeyRingError::BadId { .. })
        ));
        assert!(matches!(
            KeyRing::from_keks(vec![kek(1), kek(1)], None),
            Err(KeyRingError::DuplicateId { id: 1, .. })
        ));
        let ring = KeyRing::from_keks(vec![kek(5), kek(3)], Some(3)).expect("valid");
        assert_eq!((ring.ids(), ring.active_id()), (vec![3, 5], 3));
    }
}
