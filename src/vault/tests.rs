//! Vault tests: round trips, tampering, truncation, context binding, rotation, redaction.

use std::sync::Arc;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::*;

const KEY_1: [u8; 32] = [0x11; 32];
const KEY_2: [u8; 32] = [0x22; 32];
const KEY_3: [u8; 32] = [0x33; 32];
const TOKEN: &[u8] = b"0.AXoA-refresh-token-of-contoso";
const CTX: SealContext<'static> = SealContext {
    purpose: "grant.refresh_token",
    row: "6f1c2b0e-3b7e-4a51-9a0e-2f4c8d9b1a77",
};

fn ring(keks: &[(u32, [u8; 32])], active: Option<u32>) -> KeyRing {
    let keks = keks
        .iter()
        .map(|(id, key)| Arc::new(LocalKek::new(*id, key)) as Arc<dyn KeyEncryptionKey>)
        .collect();
    KeyRing::from_keks(keks, active).expect("valid ring")
}

fn vault(keks: &[(u32, [u8; 32])], active: Option<u32>) -> Vault {
    Vault::new(ring(keks, active))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sealed_values_open_to_the_same_bytes_and_strings() {
    let vault = vault(&[(1, KEY_1)], None);
    let sealed = vault.seal(TOKEN, &CTX).expect("seal");
    assert_eq!(sealed.len(), MIN_SEALED_LEN + TOKEN.len());
    assert_eq!(sealed[0], FORMAT_VERSION);
    assert!(
        !sealed.windows(TOKEN.len()).any(|w| w == TOKEN),
        "plaintext visible in sealed bytes"
    );
    assert_eq!(
        vault.open(&sealed, &CTX).expect("open").expose_secret(),
        TOKEN
    );

    let secret = SecretString::from("refresh-token-ü");
    let sealed = vault.seal_str(&secret, &CTX).expect("seal_str");
    assert_eq!(
        vault
            .open_string(&sealed, &CTX)
            .expect("open_string")
            .expose_secret(),
        "refresh-token-ü"
    );

    let empty = vault.seal(b"", &CTX).expect("seal empty");
    assert_eq!(empty.len(), MIN_SEALED_LEN);
    assert!(
        vault
            .open(&empty, &CTX)
            .expect("open empty")
            .expose_secret()
            .is_empty()
    );
}

#[test]
fn flipping_any_bit_of_a_sealed_value_makes_it_unopenable() {
    // KEK 3 is in the ring too, so a flipped id bit can land on a real, but wrong, KEK.
    let vault = vault(&[(1, KEY_1), (3, KEY_3)], Some(1));
    let sealed = vault.seal(TOKEN, &CTX).expect("seal");
    for position in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[position] ^= 1 << bit;
            let result = vault.open(&tampered, &CTX);
            let err = match result {
                Ok(_) => panic!("byte {position} bit {bit}: tampered value opened"),
                Err(err) => err,
            };
            let expected = match position {
                0 => matches!(err, VaultError::UnsupportedVersion(_)),
                1..=4 => matches!(err, VaultError::UnknownKek(_) | VaultError::Integrity),
                _ => matches!(err, VaultError::Integrity),
            };
            assert!(expected, "byte {position} bit {bit}: unexpected {err:?}");
            assert!(vault.rewrap(&tampered, &CTX).is_err() || position >= PAYLOAD_NONCE_AT);
        }
    }
}

#[test]
fn every_truncation_and_an_extension_fail_without_panicking() {
    let vault = vault(&[(1, KEY_1)], None);
    let sealed = vault.seal(TOKEN, &CTX).expect("seal");
    for len in 0..sealed.len() {
        let err = vault
            .open(&sealed[..len], &CTX)
            .expect_err("truncated value must not open");
        if len < MIN_SEALED_LEN {
            assert!(matches!(err, VaultError::Malformed), "len {len}: {err:?}");
            assert!(matches!(
                Vault::kek_id_of(&sealed[..len]),
                Err(VaultError::Malformed)
            ));
        } else {
            assert!(matches!(err, VaultError::Integrity), "len {len}: {err:?}");
        }
    }
    let mut extended = sealed.clone();
    extended.push(0);
    assert!(matches!(
        vault.open(&extended, &CTX),
        Err(VaultError::Integrity)
    ));
}

#[test]
fn a_value_copied_to_another_row_or_purpose_does_not_open() {
    let vault = vault(&[(1, KEY_1)], None);
    let sealed = vault.seal(TOKEN, &CTX).expect("seal");
    let others = [
        SealContext::new(
            Purpose::RefreshToken,
            "00000000-0000-0000-0000-000000000000",
        ),
        SealContext::new(Purpose::AccessToken, CTX.row),
        SealContext {
            purpose: "grant.refresh_token6f1c2b0e",
            row: "-3b7e-4a51-9a0e-2f4c8d9b1a77",
        },
    ];
    for other in others {
        assert!(
            matches!(vault.open(&sealed, &other), Err(VaultError::Integrity)),
            "{other:?}"
        );
        assert!(
            matches!(vault.rewrap(&sealed, &other), Err(VaultError::Integrity)),
            "{other:?}"
        );
    }
    // Field boundaries are length-prefixed, so moving characters between purpose and row fails too.
    let split = vault
        .seal(
            TOKEN,
            &SealContext {
                purpose: "ab",
                row: "c",
            },
        )
        .expect("seal");
    assert!(
        vault
            .open(
                &split,
                &SealContext {
                    purpose: "a",
                    row: "bc"
                }
            )
            .is_err()
    );
}

#[test]
fn an_empty_purpose_or_row_is_refused() {
    let vault = vault(&[(1, KEY_1)], None);
    assert!(matches!(
        vault.seal(
            TOKEN,
            &SealContext {
                purpose: "",
                row: "row"
            }
        ),
        Err(VaultError::EmptyContext)
    ));
    assert!(matches!(
        vault.seal(
            TOKEN,
            &SealContext {
                purpose: "p",
                row: ""
            }
        ),
        Err(VaultError::EmptyContext)
    ));
    let sealed = vault.seal(TOKEN, &CTX).expect("seal");
    assert!(matches!(
        vault.open(
            &sealed,
            &SealContext {
                purpose: "p",
                row: ""
            }
        ),
        Err(VaultError::EmptyContext)
    ));
}

#[test]
fn a_payload_spliced_onto_another_values_header_does_not_open() {
    let vault = vault(&[(1, KEY_1)], None);
    let first = vault.seal(TOKEN, &CTX).expect("seal");
    let second = vault
        .seal(b"another token of the same row!", &CTX)
        .expect("seal");
    let mut spliced = first[..PAYLOAD_NONCE_AT].to_vec();
    spliced.extend_from_slice(&second[PAYLOAD_NONCE_AT..]);
    assert!(matches!(
        vault.open(&spliced, &CTX),
        Err(VaultError::Integrity)
    ));
}

#[test]
fn a_ring_with_the_same_id_but_another_key_cannot_open() {
    let sealed = vault(&[(1, KEY_1)], None).seal(TOKEN, &CTX).expect("seal");
    let impostor = vault(&[(1, KEY_2)], None);
    assert!(matches!(
        impostor.open(&sealed, &CTX),
        Err(VaultError::Integrity)
    ));
}

#[test]
fn a_value_under_a_kek_missing_from_the_ring_reports_its_id() {
    let sealed = vault(&[(7, KEY_1)], None).seal(TOKEN, &CTX).expect("seal");
    let other = vault(&[(1, KEY_1), (2, KEY_2)], None);
    assert!(matches!(
        other.open(&sealed, &CTX),
        Err(VaultError::UnknownKek(7))
    ));
    assert!(matches!(
        other.rewrap(&sealed, &CTX),
        Err(VaultError::UnknownKek(7))
    ));
    assert_eq!(Vault::kek_id_of(&sealed).expect("header"), 7);
    assert!(!other.has_kek(7) && other.has_kek(2));
    assert_eq!(
        VaultError::UnknownKek(7).to_string(),
        "sealed value names KEK 7, which is not in the key ring"
    );
}

#[test]
fn rewrap_moves_a_value_to_the_active_kek_without_changing_its_payload() {
    let old = vault(&[(1, KEY_1)], None);
    let sealed = old.seal(TOKEN, &CTX).expect("seal");
    assert_eq!(Vault::kek_id_of(&sealed).expect("header"), 1);

    let both = vault(&[(1, KEY_1), (2, KEY_2)], Some(2));
    assert!(both.needs_rewrap(&sealed).expect("header"));
    let rewrapped = both.rewrap(&sealed, &CTX).expect("rewrap");
    assert_eq!(Vault::kek_id_of(&rewrapped).expect("header"), 2);
    assert!(!both.needs_rewrap(&rewrapped).expect("header"));
    assert_eq!(
        rewrapped[PAYLOAD_NONCE_AT..],
        sealed[PAYLOAD_NONCE_AT..],
        "payload untouched"
    );

    let only_new = vault(&[(2, KEY_2)], None);
    assert_eq!(
        only_new
            .open(&rewrapped, &CTX)
            .expect("opens under KEK 2")
            .expose_secret(),
        TOKEN
    );
    assert!(matches!(
        only_new.open(&sealed, &CTX),
        Err(VaultError::UnknownKek(1))
    ));
}

#[test]
fn rewrap_refuses_a_wrong_context_and_a_forged_kek_id() {
    let both = vault(&[(1, KEY_1), (2, KEY_2)], Some(2));
    let sealed = vault(&[(1, KEY_1)], None).seal(TOKEN, &CTX).expect("seal");
    let wrong_row = SealContext::new(Purpose::RefreshToken, "another-tenant");
    assert!(matches!(
        both.rewrap(&sealed, &wrong_row),
        Err(VaultError::Integrity)
    ));
    // Relabelling the header as KEK 2 fails: the id is part of the wrapped key's associated data.
    let mut relabelled = sealed.clone();
    relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert!(matches!(
        both.rewrap(&relabelled, &CTX),
        Err(VaultError::Integrity)
    ));
}

#[test]
fn two_seals_of_the_same_plaintext_share_no_key_material_or_nonce() {
    let vault = vault(&[(1, KEY_1)], None);
    let first = vault.seal(TOKEN, &CTX).expect("seal");
    let second = vault.seal(TOKEN, &CTX).expect("seal");
    assert_ne!(first, second);
    assert_ne!(
        first[WRAPPED_AT..PAYLOAD_NONCE_AT],
        second[WRAPPED_AT..PAYLOAD_NONCE_AT],
        "wrapped DEKs"
    );
    assert_ne!(
        first[PAYLOAD_NONCE_AT..PAYLOAD_AT],
        second[PAYLOAD_NONCE_AT..PAYLOAD_AT],
        "nonces"
    );
    assert_ne!(
        first[PAYLOAD_AT..],
        second[PAYLOAD_AT..],
        "payload ciphertexts"
    );
}

#[test]
fn non_utf8_plaintext_is_refused_by_open_string() {
    let vault = vault(&[(1, KEY_1)], None);
    let sealed = vault.seal(&[0xff, 0xfe], &CTX).expect("seal");
    assert!(matches!(
        vault.open_string(&sealed, &CTX),
        Err(VaultError::NotUtf8)
    ));
}

#[test]
fn an_unknown_format_version_is_reported() {
    let vault = vault(&[(1, KEY_1)], None);
    let mut sealed = vault.seal(TOKEN, &CTX).expect("seal");
    sealed[0] = 2;
    assert!(matches!(
        vault.open(&sealed, &CTX),
        Err(VaultError::UnsupportedVersion(2))
    ));
    assert!(matches!(
        Vault::kek_id_of(&sealed),
        Err(VaultError::UnsupportedVersion(2))
    ));
}

#[test]
fn debug_output_shows_kek_ids_but_never_key_bytes() {
    let key_text = generate_key();
    let key = BASE64_STANDARD.decode(&key_text).expect("base64");
    let ring = KeyRing::parse(&format!("4:{key_text}"), None).expect("ring");
    let kek = LocalKek::new(4, &<[u8; 32]>::try_from(&key[..]).expect("32 bytes"));
    let vault = Vault::new(ring.clone());
    let outputs = [
        format!("{vault:?}"),
        format!("{ring:?}"),
        format!("{kek:?}"),
        format!("{vault:#?}"),
    ];
    let forms = [
        key_text.clone(),
        hex(&key),
        hex(&key).to_uppercase(),
        format!("{key:?}"),
    ];
    for output in &outputs {
        assert!(output.contains('4'), "{output} should name KEK 4");
        for form in &forms {
            assert!(!output.contains(form.as_str()), "{output} leaks the key");
        }
        // Any 8-byte window of the key, in either text form, would already be a leak.
        for window in key.windows(8) {
            assert!(!output.contains(&hex(window)), "{output} leaks key bytes");
        }
    }
    assert_eq!(
        format!("{vault:?}"),
        "Vault { kek_ids: [4], active_kek: 4 }"
    );
}

/// A provider whose wrapped keys do not fit format version 1, like a KMS with RSA wrapping would.
struct OversizedKek;

impl KeyEncryptionKey for OversizedKek {
    fn id(&self) -> u32 {
        9
    }
    fn wrap(&self, _dek: &[u8; 32], _aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        Ok(vec![0; 256])
    }
    fn unwrap(&self, _wrapped: &[u8], _aad: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        Err(VaultError::Integrity)
    }
}

#[test]
fn a_provider_whose_wrapped_key_does_not_fit_the_format_is_refused() {
    let vault = Vault::new(KeyRing::from_keks(vec![Arc::new(OversizedKek)], None).expect("ring"));
    let err = vault.seal(TOKEN, &CTX).expect_err("must refuse");
    assert!(
        matches!(err, VaultError::KekUnavailable { id: 9, .. }),
        "{err:?}"
    );
}

#[test]
fn the_payload_stays_bound_to_its_context_even_if_its_data_key_is_rewrapped_for_another() {
    // Models an attacker who can re-wrap data keys (e.g. misuses a KMS) but not forge payload tags.
    let kek = LocalKek::new(1, &KEY_1);
    let vault = Vault::new(
        KeyRing::from_keks(vec![Arc::new(LocalKek::new(1, &KEY_1))], None).expect("ring"),
    );
    let sealed = vault.seal(TOKEN, &CTX).expect("seal");
    let parsed = Sealed::parse(&sealed).expect("parse");
    let dek = kek
        .unwrap(parsed.wrapped_dek, &dek_aad(1, &CTX))
        .expect("unwrap");
    let other = SealContext::new(Purpose::RefreshToken, "another-tenant");
    let rebound = kek.wrap(&dek, &dek_aad(1, &other)).expect("wrap");
    let mut moved = sealed[..WRAPPED_AT].to_vec();
    moved.extend_from_slice(&rebound);
    moved.extend_from_slice(&sealed[PAYLOAD_NONCE_AT..]);
    assert!(matches!(
        vault.open(&moved, &other),
        Err(VaultError::Integrity)
    ));
    // Control: re-wrapping for the same context keeps it openable, so the failure above is the binding.
    let same = kek.wrap(&dek, &dek_aad(1, &CTX)).expect("wrap");
    let mut kept = sealed[..WRAPPED_AT].to_vec();
    kept.extend_from_slice(&same);
    kept.extend_from_slice(&sealed[PAYLOAD_NONCE_AT..]);
    assert_eq!(
        vault.open(&kept, &CTX).expect("opens").expose_secret(),
        TOKEN
    );
}

#[test]
fn the_header_kek_id_is_authenticated_even_when_two_ids_share_a_key() {
    // An operator who re-adds the same key under a new id must not make headers relabellable.
    let twins = vault(&[(1, KEY_1), (2, KEY_1)], Some(1));
    let sealed = twins.seal(TOKEN, &CTX).expect("seal");
    let mut relabelled = sealed.clone();
    relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert!(matches!(
        twins.open(&relabelled, &CTX),
        Err(VaultError::Integrity)
    ));
    assert!(matches!(
        twins.rewrap(&relabelled, &CTX),
        Err(VaultError::Integrity)
    ));
}

// Property tests: the same rules as above, over generated plaintexts, contexts and edits.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn any_plaintext_under_any_context_round_trips(
        plaintext in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024),
        purpose in "\\PC{1,24}",
        row in "\\PC{1,40}",
        active in 1u32..=2,
    ) {
        let other = vault(&[(1, KEY_1), (2, KEY_2)], Some(3 - active));
        let vault = vault(&[(1, KEY_1), (2, KEY_2)], Some(active));
        let ctx = SealContext { purpose: &purpose, row: &row };
        let sealed = vault.seal(&plaintext, &ctx).expect("seal");
        proptest::prop_assert_eq!(sealed.len(), 77 + plaintext.len() + 16);
        proptest::prop_assert_eq!(Vault::kek_id_of(&sealed).expect("header"), active);
        let opened = vault.open(&sealed, &ctx).expect("open");
        proptest::prop_assert_eq!(opened.expose_secret(), &plaintext[..]);
        // Re-wrapped under the other KEK, it still opens to the same bytes.
        let rewrapped = other.rewrap(&sealed, &ctx).expect("rewrap");
        let reopened = other.open(&rewrapped, &ctx).expect("open");
        proptest::prop_assert_eq!(reopened.expose_secret(), &plaintext[..]);
    }

    #[test]
    fn any_change_to_any_byte_or_the_length_is_detected(
        plaintext in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        at in proptest::prelude::any::<proptest::sample::Index>(),
        mask in 1u8..=255,
        cut in 1usize..=16,
        extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..8),
    ) {
        let vault = vault(&[(1, KEY_1), (2, KEY_2)], None);
        let sealed = vault.seal(&plaintext, &CTX).expect("seal");
        let mut flipped = sealed.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= mask;
        proptest::prop_assert!(vault.open(&flipped, &CTX).is_err(), "byte {} changed and still opened", i);
        let truncated = &sealed[..sealed.len() - cut];
        proptest::prop_assert!(vault.open(truncated, &CTX).is_err());
        let mut extended = sealed.clone();
        extended.extend_from_slice(&extra);
        proptest::prop_assert!(vault.open(&extended, &CTX).is_err());
    }

    #[test]
    fn a_value_opens_only_under_the_exact_context_it_was_sealed_for(
        purpose in "[a-z._]{1,12}",
        row in "[a-z0-9-]{1,12}",
        other_purpose in "[a-z._]{1,12}",
        other_row in "[a-z0-9-]{1,12}",
    ) {
        let vault = vault(&[(1, KEY_1)], None);
        let sealed = vault.seal(TOKEN, &SealContext { purpose: &purpose, row: &row }).expect("seal");
        let opens = vault.open(&sealed, &SealContext { purpose: &other_purpose, row: &other_row }).is_ok();
        // Same concatenation, different split ("ab"+"c" vs "a"+"bc") must not collide either.
        proptest::prop_assert_eq!(opens, purpose == other_purpose && row == other_row);
    }
}

#[test]
fn every_purpose_has_its_own_stable_text() {
    let all = [
        Purpose::RefreshToken,
        Purpose::AccessToken,
        Purpose::WebhookSecret,
        Purpose::StaffTotpSecret,
    ];
    let texts: std::collections::HashSet<&str> = all.iter().map(|p| p.as_str()).collect();
    assert_eq!(texts.len(), all.len(), "two purposes share a text");
    // Stored values are bound to these texts: they may never change.
    assert_eq!(Purpose::RefreshToken.as_str(), "grant.refresh_token");
    assert_eq!(Purpose::AccessToken.as_str(), "grant.access_token");
    assert_eq!(Purpose::WebhookSecret.as_str(), "webhook.secret");
    assert_eq!(Purpose::StaffTotpSecret.as_str(), "staff.totp_secret");
}

#[test]
fn a_fresh_seal_names_the_kek_that_wrapped_it() {
    let vault = vault(&[(1, KEY_1), (2, KEY_2)], Some(2));
    let sealed = vault.seal(TOKEN, &CTX).expect("seal");
    assert_eq!(
        sealed.kek_id,
        Vault::kek_id_of(&sealed.bytes).expect("header")
    );
    assert_eq!(sealed.kek_id, vault.active_kek_id());
    assert_eq!(sealed.kek_id, 2);

    let old = self::vault(&[(1, KEY_1), (2, KEY_2)], Some(1));
    let secret = SecretString::from("refresh-token");
    let under_old = old.seal_str(&secret, &CTX).expect("seal_str");
    assert_eq!(
        under_old.kek_id,
        Vault::kek_id_of(&under_old.bytes).expect("header")
    );
    assert_eq!(under_old.kek_id, old.active_kek_id());
    assert_eq!(under_old.kek_id, 1);

    let rewrapped = vault.rewrap(&under_old.bytes, &CTX).expect("rewrap");
    assert_eq!(
        rewrapped.kek_id,
        Vault::kek_id_of(&rewrapped.bytes).expect("header")
    );
    assert_eq!(rewrapped.kek_id, vault.active_kek_id());
}

#[test]
fn a_sealed_values_debug_shows_its_length_and_kek_only() {
    let sealed = vault(&[(3, KEY_3)], None).seal(TOKEN, &CTX).expect("seal");
    let len = MIN_SEALED_LEN + TOKEN.len();
    let expected = format!("Sealed {{ len: {len}, kek_id: 3 }}");
    assert_eq!(format!("{sealed:?}"), expected);
    assert!(!format!("{sealed:#?}").contains(&format!("{:?}", &sealed.bytes[..8])));
}
