//! Replays Microsoft's recorded token-endpoint responses (`crates/ms-emulator/tests/recorded/`,
//! sources in its `index.toml`) through samgate's parsing and AADSTS classification.

use super::RawTokenResponse;
use super::errors::{ErrorClass, TokenErrorBody, classify};

macro_rules! recorded {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/ms-emulator/tests/recorded/identity/",
            $file
        ))
    };
}

fn error_body(json: &str) -> TokenErrorBody {
    serde_json::from_str(json).expect("recorded error body parses")
}

/// One recorded error and what it means. `status` is the recorded one, or the one Microsoft sends
/// for that `error` where the source omits it.
struct Case {
    file: &'static str,
    body: &'static str,
    status: u16,
    class: ErrorClass,
    code: u64,
    suberror: Option<&'static str>,
}

const RECORDED_ERRORS: &[Case] = &[
    Case {
        file: "invalid-grant-700082-inactive-refresh-token.json",
        body: recorded!("invalid-grant-700082-inactive-refresh-token.json"),
        status: 400,
        class: ErrorClass::ConsentRequired,
        code: 700082,
        suberror: None,
    },
    Case {
        file: "invalid-grant-50173-grant-revoked.json",
        body: recorded!("invalid-grant-50173-grant-revoked.json"),
        status: 400,
        class: ErrorClass::ConsentRequired,
        code: 50173,
        suberror: None,
    },
    Case {
        file: "invalid-grant-65001-consent-required.json",
        body: recorded!("invalid-grant-65001-consent-required.json"),
        status: 400,
        class: ErrorClass::ConsentRequired,
        code: 65001,
        suberror: Some("consent_required"),
    },
    Case {
        file: "invalid-grant-50076-basic-action.json",
        body: recorded!("invalid-grant-50076-basic-action.json"),
        status: 400,
        class: ErrorClass::MfaRequired,
        code: 50076,
        suberror: Some("basic_action"),
    },
    Case {
        file: "interaction-required-50079-claims-challenge.json",
        body: recorded!("interaction-required-50079-claims-challenge.json"),
        status: 400,
        class: ErrorClass::MfaRequired,
        code: 50079,
        suberror: Some("basic_action"),
    },
    Case {
        file: "invalid-grant-9002313-malformed.json",
        body: recorded!("invalid-grant-9002313-malformed.json"),
        status: 400,
        class: ErrorClass::ConsentRequired,
        code: 9002313,
        suberror: None,
    },
    Case {
        file: "invalid-client-7000222-secret-expired.json",
        body: recorded!("invalid-client-7000222-secret-expired.json"),
        status: 401,
        class: ErrorClass::AppConfiguration,
        code: 7000222,
        suberror: None,
    },
    Case {
        file: "invalid-grant-70000-v1-2014.json",
        body: recorded!("invalid-grant-70000-v1-2014.json"),
        status: 400,
        class: ErrorClass::ConsentRequired,
        code: 70000,
        suberror: None,
    },
    Case {
        file: "invalid-request-90002-tenant-not-found.json",
        body: recorded!("invalid-request-90002-tenant-not-found.json"),
        status: 400,
        class: ErrorClass::AppConfiguration,
        code: 90002,
        suberror: None,
    },
];

#[test]
fn every_recorded_token_error_is_classified_as_what_it_means() {
    for case in RECORDED_ERRORS {
        let file = case.file;
        let classified = classify(case.status, &error_body(case.body));
        assert_eq!(classified.class, case.class, "{file}");
        assert_eq!(classified.code, Some(case.code), "{file}");
        assert_eq!(classified.suberror.as_deref(), case.suberror, "{file}");
        assert!(!classified.class.is_retryable(), "{file}");
    }
}

#[test]
fn the_recorded_50076_without_error_codes_is_read_from_the_description() {
    let body = error_body(recorded!("invalid-grant-50076-basic-action.json"));
    assert!(body.error_codes.is_empty() && body.trace_id.is_none());
    let classified = classify(400, &body);
    assert_eq!(
        (classified.class, classified.code),
        (ErrorClass::MfaRequired, Some(50076))
    );
    assert!(classified.class.needs_reconsent());
}

#[test]
fn the_recorded_65001_means_consent_is_missing_and_has_no_error_uri() {
    let body = error_body(recorded!("invalid-grant-65001-consent-required.json"));
    assert!(body.error_uri.is_none());
    let classified = classify(400, &body);
    assert_eq!(classified.class, ErrorClass::ConsentRequired);
    assert!(
        classified.advice.contains("consent"),
        "{}",
        classified.advice
    );
}

#[test]
fn the_recorded_50079_keeps_its_claims_challenge_and_support_ids() {
    let body = error_body(recorded!(
        "interaction-required-50079-claims-challenge.json"
    ));
    let claims = body
        .claims
        .as_ref()
        .and_then(|c| c.as_str())
        .expect("claims string");
    assert!(claims.contains("capolids"), "{claims}");
    assert_eq!(
        body.correlation_id.as_deref(),
        Some("e421d7f3-0160-4431-bc41-d675aa4007e8")
    );
    assert!(classify(400, &body).advice.contains("register"));
}

#[test]
fn the_recorded_v1_body_with_two_codes_is_classified_by_the_known_one() {
    let body = error_body(recorded!("invalid-grant-70000-v1-2014.json"));
    assert_eq!(body.error_codes, [70002, 70000]);
    assert_eq!(classify(400, &body).code, Some(70000));
}

#[test]
fn the_recorded_7000222_with_escaped_slashes_parses() {
    let body = error_body(recorded!("invalid-client-7000222-secret-expired.json"));
    assert_eq!(
        body.error_uri.as_deref(),
        Some("https://login.microsoftonline.com/error?code=7000222")
    );
    assert!(!classify(401, &body).class.needs_reconsent());
}

#[test]
fn the_recorded_client_credentials_success_has_no_refresh_token() {
    let raw: RawTokenResponse =
        serde_json::from_str(recorded!("token-client-credentials.json")).expect("parses");
    assert_eq!(raw.expires_in, 86399);
    assert!(raw.refresh_token.is_none() && raw.id_token.is_none() && raw.scope.is_none());
    assert_eq!(raw.access_token, "access_token");
}

#[test]
fn the_recorded_refresh_success_carries_refresh_and_id_tokens() {
    let raw: RawTokenResponse =
        serde_json::from_str(recorded!("token-refresh-token-client-info.json")).expect("parses");
    assert_eq!(raw.expires_in, 4771);
    assert_eq!(raw.refresh_token.as_deref(), Some("secret"));
    assert!(
        raw.id_token
            .as_deref()
            .is_some_and(|t| t.starts_with("eyJ"))
    );
    assert_eq!(
        raw.scope.as_deref(),
        Some(
            "https://management.core.windows.net//user_impersonation https://management.core.windows.net//.default"
        )
    );
}
