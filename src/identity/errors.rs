//! Classification of Microsoft identity platform errors into what samgate and people should do.
//!
//! Branches on the OAuth `error` value and the AADSTS numbers in `error_codes`, never on description
//! text (Microsoft: texts change); a leading `AADSTSnnnn` in the description is read only when
//! `error_codes` is empty. Table: `docs/microsoft-protocols.md` §2.5, <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>

use serde::{Deserialize, Deserializer};

/// What kind of failure Microsoft reported, which decides what samgate does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The stored grant is unusable (expired, revoked, consent removed): the partner must consent again.
    ConsentRequired,
    /// Multi-factor authentication is needed (or must be registered) before consenting again.
    MfaRequired,
    /// A setting in the partner's tenant (Conditional Access, admin consent, wrong account) blocks us.
    PartnerConfiguration,
    /// samgate's app registration or configuration (secret, certificate, redirect URI, cloud) is wrong.
    AppConfiguration,
    /// AADSTS90099: the app is not consented in a customer tenant; call Partner Center applicationconsents.
    CustomerConsentMissing,
    /// The user declined consent or cancelled the sign-in.
    AccessDenied,
    /// Microsoft is throttling us; back off.
    Throttled,
    /// A temporary failure at Microsoft; retry with backoff.
    Transient,
    /// Our request was wrong: a samgate bug.
    Bug,
    /// Not recognised.
    Unknown,
}

impl ErrorClass {
    /// A stable snake_case code for logs, metrics and API responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConsentRequired => "consent_required",
            Self::MfaRequired => "mfa_required",
            Self::PartnerConfiguration => "partner_configuration",
            Self::AppConfiguration => "app_configuration",
            Self::CustomerConsentMissing => "customer_consent_missing",
            Self::AccessDenied => "access_denied",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::Bug => "bug",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the partner's stored grant is unusable until its admin consents again.
    pub fn needs_reconsent(self) -> bool {
        matches!(self, Self::ConsentRequired | Self::MfaRequired)
    }

    /// Whether retrying the same request later (with backoff) can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Transient)
    }
}

/// The JSON body of a failed token-endpoint request; only `error` is required, unknown fields ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenErrorBody {
    /// The OAuth error value, e.g. `invalid_grant`.
    pub error: String,
    /// Human-readable text; for people and the AADSTS fallback only, never for branching.
    #[serde(default)]
    pub error_description: Option<String>,
    /// The AADSTS numbers, e.g. `[50076]`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub error_codes: Vec<u64>,
    /// When Microsoft saw the error.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Microsoft's trace id, for support requests.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Microsoft's correlation id, for support requests.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// A link with more about the error, when Microsoft has one.
    #[serde(default)]
    pub error_uri: Option<String>,
    /// A finer reason seen in real responses, e.g. `basic_action`.
    #[serde(default)]
    pub suberror: Option<String>,
    /// A claims challenge accompanying some Conditional Access errors (shape unconfirmed).
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
}

impl TokenErrorBody {
    /// A body with only `error` set, for answers that carried no parsable JSON.
    pub fn bare(error: &str) -> Self {
        Self {
            error: error.to_owned(),
            ..Self::default()
        }
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
    Ok(Option::<Vec<u64>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A classified failure: the class, the AADSTS code and OAuth error kept for operators, and advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// What kind of failure.
    pub class: ErrorClass,
    /// The AADSTS number, when Microsoft gave one.
    pub code: Option<u64>,
    /// The OAuth `error` value.
    pub error: String,
    /// What an operator or the partner should do, in plain words.
    pub advice: &'static str,
    /// Microsoft's `suberror`, if any.
    pub suberror: Option<String>,
}

/// Every AADSTS code samgate handles: its class and what to do (protocol page §2.5).
#[rustfmt::skip]
const CODES: &[(u64, ErrorClass, &str)] = {
    use ErrorClass::*;
    &[
        (70008, ConsentRequired, "The partner's refresh token expired or was revoked; the partner admin must consent again."),
        (700082, ConsentRequired, "The refresh token expired after 90 days without use; the partner admin must consent again. Refresh tokens well inside 90 days to keep them alive."),
        (700084, AppConfiguration, "The refresh token was issued to a single-page-app redirect URI (fixed 24-hour lifetime); register samgate's redirect URI as type Web, then have the partner consent again."),
        (50173, ConsentRequired, "The grant was revoked (sessions revoked, or the password reset or changed); the partner admin must consent again."),
        (50089, ConsentRequired, "The sign-in flow token expired; the partner admin must consent again."),
        (70000, ConsentRequired, "The refresh token is invalid or revoked; the partner admin must consent again."),
        (50076, MfaRequired, "Conditional Access or per-user MFA now requires multi-factor authentication; the partner admin must consent again and complete MFA."),
        (50079, MfaRequired, "The account must register for multi-factor authentication; the partner admin must register MFA (https://aka.ms/mfasetup), then consent again."),
        (50078, MfaRequired, "The MFA presented expired under the tenant's policy; the partner admin must consent again with MFA."),
        (50074, MfaRequired, "The MFA challenge was not passed; the partner admin must consent again and complete MFA."),
        (50072, MfaRequired, "The sign-in was interrupted to enrol in MFA; the partner admin must finish registering MFA, then consent again."),
        (70043, ConsentRequired, "A Conditional Access sign-in frequency policy invalidated the refresh token; the partner admin must consent again and should exclude this account from that policy."),
        (53003, PartnerConfiguration, "Conditional Access in the partner's tenant blocked the sign-in; the partner must allow this app and account in its policies."),
        (53000, PartnerConfiguration, "Conditional Access in the partner's tenant requires a compliant device, which server-side refreshes never have; the partner must exclude this account or app from that policy."),
        (53001, PartnerConfiguration, "Conditional Access in the partner's tenant requires a domain-joined device, which server-side refreshes never have; the partner must exclude this account or app from that policy."),
        (53002, PartnerConfiguration, "Conditional Access in the partner's tenant allows only approved client apps; the partner must exclude this app from that policy."),
        (53004, PartnerConfiguration, "The account must complete MFA registration but sign-in risk blocks it; the partner's administrator must remediate the account's risk, then the admin consents again."),
        (70044, ConsentRequired, "The session expired under a sign-in frequency policy; the partner admin must consent again, and the partner should exclude this account from that policy."),
        (50158, MfaRequired, "An external security challenge (a third-party MFA provider) was not satisfied; the partner admin must consent again and complete that challenge."),
        (5000224, PartnerConfiguration, "Microsoft says this tenant no longer exists (deleted or being deleted); offboard the partner if it has left."),
        (530034, PartnerConfiguration, "The delegated admin is blocked because of sign-in risk in its home tenant; the partner must remediate the account's risk, then consent again."),
        (65001, ConsentRequired, "Consent to the app is missing or was removed; send the partner admin to consent again."),
        (65004, AccessDenied, "The partner admin declined consent; nothing was granted. Send the invitation again if that was a mistake."),
        (90094, PartnerConfiguration, "Admin consent is required for these permissions; a Global Administrator of the partner tenant must consent."),
        (90095, PartnerConfiguration, "The tenant requires an administrator to approve apps; a Global Administrator of the partner tenant must consent."),
        (90099, CustomerConsentMissing, "The app is not consented in the customer tenant for the partner's delegated admins; grant it with Partner Center's applicationconsents API, then retry."),
        (50020, PartnerConfiguration, "The account is not a member of the tenant (guest or other-tenant account); sign in with an account of the partner tenant."),
        (16000, PartnerConfiguration, "The account does not exist in the target tenant (often a guest with the same UPN, or a missing GDAP security group); check the account and its GDAP assignments."),
        (50034, PartnerConfiguration, "The user account does not exist in the tenant; sign in with an account of the partner tenant."),
        (50177, PartnerConfiguration, "External (guest) accounts cannot complete this challenge; sign in with a member account of the partner tenant."),
        (50057, ConsentRequired, "The consenting account is disabled; another admin agent of the partner must consent again."),
        (54005, Bug, "The authorization code was already redeemed (codes are single-use, e.g. a reloaded callback); start the consent again."),
        (501481, Bug, "The PKCE code verifier did not match the challenge; a samgate bug in the consent session."),
        (700005, Bug, "The authorization code was redeemed at another tenant than the one that issued it; a samgate bug."),
        (50011, AppConfiguration, "The redirect URI does not match the app registration; add samgate's exact callback URL as a Web redirect URI."),
        (70004, AppConfiguration, "The redirect URI is not valid for this app; compare the app registration's Web redirect URIs with SAMGATE_PUBLIC_URL."),
        (70011, Bug, "A requested scope is invalid; a samgate bug in the scopes it requests."),
        (700022, Bug, "Invalid scope (for example several resources in one request); a samgate bug."),
        (28002, Bug, "A requested scope is invalid for this request; a samgate bug."),
        (901002, Bug, "The v2 endpoint does not accept the `resource` parameter; a samgate bug (use scopes)."),
        (50194, AppConfiguration, "The app is not multitenant; set 'Accounts in any organizational directory' in the app registration."),
        (9001023, Bug, "The grant type is not supported on /common or /consumers; a samgate bug (it must call the tenant's or /organizations endpoint): report it with the correlation id."),
        (90124, Bug, "The resource is not supported on /common or /consumers; a samgate bug (it must call the tenant's endpoint): report it with the correlation id."),
        (90130, Bug, "The app is not supported on /common or /consumers; a samgate bug (it must call the tenant's or /organizations endpoint): report it with the correlation id."),
        (7000215, AppConfiguration, "Invalid client secret; SAMGATE_CLIENT_SECRET must hold the secret's value, not its ID. Every partner is affected."),
        (7000222, AppConfiguration, "The app's client secret expired; create a new one (or use a certificate) and update SAMGATE_CLIENT_SECRET. Every partner is affected."),
        (7000218, Bug, "No client credential was sent (client_secret or client_assertion); a samgate bug."),
        (700027, AppConfiguration, "The client assertion's signature or certificate is invalid; upload samgate's certificate to the app registration and check it has not expired."),
        (50012, AppConfiguration, "Client authentication failed (assertion or certificate invalid); check the certificate and key files against the app registration."),
        (700016, AppConfiguration, "The app was not found in the tenant's directory; check SAMGATE_CLIENT_ID, that the app is multitenant and that the partner consented."),
        (700011, AppConfiguration, "The app was not found in the directory; check SAMGATE_CLIENT_ID and the tenant."),
        (700007, Bug, "The refresh token was issued to a different client id; a samgate bug, or SAMGATE_CLIENT_ID changed since the partner consented."),
        (90038, AppConfiguration, "The tenant is in a national cloud; point samgate at that cloud's endpoints."),
        (900382, AppConfiguration, "A confidential client cannot be used across clouds; an operator must point samgate at the app and endpoints of the tenant's cloud (SAMGATE_AUTHORITY_URL, SAMGATE_CLIENT_ID)."),
        (900432, AppConfiguration, "Confidential clients are not supported in cross-cloud requests; an operator must point samgate at the tenant's cloud endpoints (SAMGATE_AUTHORITY_URL)."),
        (90002, AppConfiguration, "The tenant was not found; check the stored tenant id and that samgate points at the right cloud."),
        (50196, Throttled, "Microsoft detected a request loop (too many identical requests); back off and cache access tokens instead of re-requesting them."),
        (90055, Throttled, "The tenant is being throttled; back off and retry later."),
    ]
};

/// The class and advice samgate has for an AADSTS code, if it knows the code.
pub fn lookup_code(code: u64) -> Option<(ErrorClass, &'static str)> {
    CODES
        .iter()
        .find(|(known, _, _)| *known == code)
        .map(|(_, class, advice)| (*class, *advice))
}

/// Classifies a token-endpoint failure from its HTTP status and body.
pub fn classify(http_status: u16, body: &TokenErrorBody) -> Classified {
    let code = body
        .error_codes
        .iter()
        .copied()
        .find(|code| lookup_code(*code).is_some())
        .or_else(|| body.error_codes.first().copied())
        .or_else(|| {
            // Fallback only: Microsoft asks clients not to parse descriptions.
            if body.error_codes.is_empty() {
                body.error_description.as_deref().and_then(leading_code)
            } else {
                None
            }
        });
    classify_parts(Some(http_status), &body.error, code, body.suberror.clone())
}

/// Classifies an `error`/`error_description` pair from an authorize-endpoint redirect.
pub fn classify_authorize_error(error: &str, description: Option<&str>) -> Classified {
    // The redirect carries no `error_codes`, so the description's leading AADSTS is the only code.
    classify_parts(None, error, description.and_then(leading_code), None)
}

fn classify_parts(
    http_status: Option<u16>,
    error: &str,
    code: Option<u64>,
    suberror: Option<String>,
) -> Classified {
    let (class, advice) = code.and_then(lookup_code).unwrap_or_else(|| {
        let class = match (http_status, error) {
            (Some(429), _) => ErrorClass::Throttled,
            (Some(500..=599), _) | (_, "temporarily_unavailable" | "server_error") => {
                ErrorClass::Transient
            }
            (
                _,
                "invalid_grant" | "interaction_required" | "consent_required" | "login_required",
            ) => ErrorClass::ConsentRequired,
            (_, "access_denied") => ErrorClass::AccessDenied,
            (_, "invalid_client" | "unauthorized_client" | "invalid_resource") => {
                ErrorClass::AppConfiguration
            }
            (
                _,
                "invalid_request"
                | "unsupported_grant_type"
                | "unsupported_response_type"
                | "invalid_scope",
            ) => ErrorClass::Bug,
            _ => ErrorClass::Unknown,
        };
        (class, default_advice(class))
    });
    Classified {
        class,
        code,
        error: error.to_owned(),
        advice,
        suberror,
    }
}

fn default_advice(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::ConsentRequired => {
            "The stored grant can no longer be used; the partner admin must consent again."
        }
        ErrorClass::MfaRequired => {
            "The partner admin must consent again and complete multi-factor authentication."
        }
        ErrorClass::PartnerConfiguration => {
            "A setting in the partner's tenant blocks this; the partner admin must change it (see the AADSTS code)."
        }
        ErrorClass::AppConfiguration => {
            "samgate's app registration or configuration is wrong; an operator must fix it (see the AADSTS code)."
        }
        ErrorClass::CustomerConsentMissing => {
            "The app is not consented in the customer tenant; grant it with Partner Center's applicationconsents API."
        }
        ErrorClass::AccessDenied => "The partner admin cancelled or declined; nothing was granted.",
        ErrorClass::Throttled => "Microsoft is throttling requests; retry later with backoff.",
        ErrorClass::Transient => {
            "Microsoft's identity platform is temporarily unavailable; retry with backoff."
        }
        ErrorClass::Bug => {
            "Microsoft considers samgate's request invalid; report it with the correlation id."
        }
        ErrorClass::Unknown => {
            "Unrecognised error; look the AADSTS code up at https://login.microsoftonline.com/error and report it."
        }
    }
}

/// The number of a description that starts with `AADSTSnnnn`, e.g. `AADSTS700082: The refresh…`.
fn leading_code(description: &str) -> Option<u64> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 10 {
        return None;
    }
    rest[..digits].parse().ok()
}

/// A title and a plain-words explanation with what to do, for the partner admin's error page.
pub fn partner_message(c: &Classified) -> (&'static str, &'static str) {
    match (c.class, c.code) {
        (ErrorClass::AccessDenied, Some(65004)) => (
            "Consent was declined",
            "You chose not to grant the permissions, so nothing was connected. If that was a mistake, open \
             your invitation link again and accept.",
        ),
        (ErrorClass::AccessDenied, _) => (
            "Sign-in was cancelled",
            "The sign-in was cancelled before it finished, so nothing was connected. Open your invitation \
             link again to retry.",
        ),
        (ErrorClass::MfaRequired, Some(50079 | 50072)) => (
            "Multi-factor authentication must be set up",
            "Your account has not finished registering for multi-factor authentication (MFA), which this \
             connection requires. Set up MFA for your account (for example at https://aka.ms/mfasetup), \
             then open your invitation link again.",
        ),
        (ErrorClass::MfaRequired, _) => (
            "Multi-factor authentication is required",
            "This connection requires you to sign in with multi-factor authentication (MFA). Open your \
             invitation link again and complete the MFA prompt. If your organisation uses another MFA \
             provider, it must report the MFA to Microsoft Entra ID.",
        ),
        (ErrorClass::ConsentRequired, Some(50057)) => (
            "This account is disabled",
            "The account you used is disabled in your organisation. Open your invitation link again and \
             sign in with another admin agent account.",
        ),
        (ErrorClass::ConsentRequired, _) => (
            "Your consent is needed",
            "The permission to act for your organisation is missing or no longer valid. Open your \
             invitation link again and sign in with an admin agent account to grant it.",
        ),
        (ErrorClass::PartnerConfiguration, Some(90094 | 90095)) => (
            "An administrator must approve this app",
            "Your organisation allows only administrators to grant these permissions. Ask a Global \
             Administrator of your organisation to open the invitation link and consent.",
        ),
        (ErrorClass::PartnerConfiguration, Some(53000..=53004 | 530034)) => (
            "Your organisation's sign-in policy blocked this",
            "A Conditional Access or sign-in risk policy in your organisation blocked the sign-in. Ask your \
             administrator to review the policy for this account, then open your invitation link again.",
        ),
        (ErrorClass::PartnerConfiguration, Some(50020 | 16000 | 50034 | 50177)) => (
            "Please use an account of your organisation",
            "The account you signed in with does not belong to your organisation (for example, a guest \
             account). Sign out, open your invitation link again and sign in with an admin agent account \
             of your own organisation.",
        ),
        (ErrorClass::PartnerConfiguration, _) => (
            "Your organisation's settings prevent this",
            "A setting in your organisation's Microsoft Entra tenant prevented the connection. Share the \
             reference on this page with your administrator or with us.",
        ),
        (ErrorClass::CustomerConsentMissing, _) => (
            "The app is not yet approved for a customer",
            "The app still has to be approved in one of your customers' tenants. We do this through \
             Partner Center; contact us with the reference on this page if it persists.",
        ),
        (ErrorClass::Throttled | ErrorClass::Transient, _) => (
            "Microsoft's sign-in service is busy",
            "Microsoft's sign-in service did not answer normally. Wait a few minutes, then open your \
             invitation link again.",
        ),
        (ErrorClass::Bug, Some(54005)) => (
            "This sign-in was already used",
            "The page was probably reloaded or submitted twice. Open your invitation link again to start \
             over.",
        ),
        (ErrorClass::AppConfiguration | ErrorClass::Bug, _) => (
            "We could not complete the connection",
            "Something is wrong on our side, not with your account. Open your invitation link again later; \
             if it keeps happening, contact us with the reference on this page.",
        ),
        (ErrorClass::Unknown, _) => (
            "We could not complete the connection",
            "Microsoft reported an unexpected error. Open your invitation link again; if it keeps happening, \
             contact us with the reference on this page.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    /// The protocol page's §2.5 table, restated independently of `CODES` so a change to either fails.
    const EXPECTED: &[(u64, ErrorClass)] = &[
        (70008, ConsentRequired),
        (700082, ConsentRequired),
        (700084, AppConfiguration),
        (50173, ConsentRequired),
        (50089, ConsentRequired),
        (70000, ConsentRequired),
        (50076, MfaRequired),
        (50079, MfaRequired),
        (50078, MfaRequired),
        (50074, MfaRequired),
        (50072, MfaRequired),
        (70043, ConsentRequired),
        (53003, PartnerConfiguration),
        (53000, PartnerConfiguration),
        (53001, PartnerConfiguration),
        (53002, PartnerConfiguration),
        (53004, PartnerConfiguration),
        (70044, ConsentRequired),
        (50158, MfaRequired),
        (5000224, PartnerConfiguration),
        (530034, PartnerConfiguration),
        (65001, ConsentRequired),
        (65004, AccessDenied),
        (90094, PartnerConfiguration),
        (90095, PartnerConfiguration),
        (90099, CustomerConsentMissing),
        (50020, PartnerConfiguration),
        (16000, PartnerConfiguration),
        (50034, PartnerConfiguration),
        (50177, PartnerConfiguration),
        (50057, ConsentRequired),
        (54005, Bug),
        (501481, Bug),
        (700005, Bug),
        (50011, AppConfiguration),
        (70004, AppConfiguration),
        (70011, Bug),
        (700022, Bug),
        (28002, Bug),
        (901002, Bug),
        (50194, AppConfiguration),
        (9001023, Bug),
        (90124, Bug),
        (90130, Bug),
        (7000215, AppConfiguration),
        (7000222, AppConfiguration),
        (7000218, Bug),
        (700027, AppConfiguration),
        (50012, AppConfiguration),
        (700016, AppConfiguration),
        (700011, AppConfiguration),
        (700007, Bug),
        (90038, AppConfiguration),
        (900382, AppConfiguration),
        (900432, AppConfiguration),
        (90002, AppConfiguration),
        (50196, Throttled),
        (90055, Throttled),
    ];

    fn body(json: &str) -> TokenErrorBody {
        serde_json::from_str(json).expect("valid error body")
    }

    #[test]
    fn every_aadsts_code_of_the_protocol_table_maps_to_its_class_and_advice() {
        assert_eq!(
            CODES.len(),
            EXPECTED.len(),
            "CODES and the pinned table differ in size"
        );
        for (code, expected) in EXPECTED {
            let error_body = TokenErrorBody {
                error_codes: vec![*code],
                ..TokenErrorBody::bare("invalid_grant")
            };
            let classified = classify(400, &error_body);
            assert_eq!(classified.class, *expected, "AADSTS{code}");
            assert_eq!(classified.code, Some(*code));
            assert!(
                classified.advice.len() > 30,
                "AADSTS{code} advice too thin: {}",
                classified.advice
            );
            assert!(
                !classified.advice.contains("AADSTS"),
                "advice should not need the code: {code}"
            );
            assert_eq!(lookup_code(*code).map(|(class, _)| class), Some(*expected));
        }
        for (code, _, _) in CODES {
            assert!(
                EXPECTED.iter().any(|(pinned, _)| pinned == code),
                "AADSTS{code} not pinned"
            );
        }
    }

    /// Every advice says who acts and how: the partner (admin), an operator (a setting, the app
    /// registration), samgate's own bug to report, or back off and retry; and each code's advice
    /// is its own, not the class default.
    #[test]
    fn every_code_has_advice_someone_can_act_on() {
        const WHO: &[&str] = &[
            "partner",
            "SAMGATE_",
            "app registration",
            "samgate bug",
            "a samgate bug",
            "back off",
            "retry",
            "point samgate",
            "check",
            "offboard",
            "start the consent again",
            "sign in with",
        ];
        for (code, class, advice) in CODES {
            let lower = advice.to_lowercase();
            assert!(
                WHO.iter().any(|w| lower.contains(&w.to_lowercase())),
                "AADSTS{code}: advice names nobody who acts: {advice}"
            );
            assert!(advice.ends_with('.'), "AADSTS{code}: {advice}");
            assert_ne!(
                *advice,
                default_advice(*class),
                "AADSTS{code} has only the class default"
            );
        }
    }

    #[test]
    fn the_real_50076_sample_with_basic_action_means_mfa_is_required() {
        let sample = body(
            r#"{"error":"invalid_grant",
            "error_description":"AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'.\r\nTrace ID: 7abd\r\nCorrelation ID: 589e\r\nTimestamp: 2019-11-13 22:33:10Z",
            "error_codes":[50076],"timestamp":"2019-11-13 22:33:10Z","trace_id":"7abd",
            "correlation_id":"589e","error_uri":"https://login.microsoftonline.com/error?code=50076",
            "suberror":"basic_action"}"#,
        );
        let classified = classify(400, &sample);
        assert_eq!(classified.class, MfaRequired);
        assert_eq!(classified.code, Some(50076));
        assert_eq!(classified.error, "invalid_grant");
        assert_eq!(classified.suberror.as_deref(), Some("basic_action"));
        assert!(classified.class.needs_reconsent() && !classified.class.is_retryable());
        assert_eq!(sample.correlation_id.as_deref(), Some("589e"));
    }

    #[test]
    fn the_real_invalid_client_7000215_sample_is_an_app_configuration_problem() {
        let sample = body(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '6f1c2b0e'.","error_codes":[7000215],"timestamp":"2024-01-01 00:00:00Z","trace_id":"t","correlation_id":"c","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#,
        );
        let classified = classify(401, &sample);
        assert_eq!(classified.class, AppConfiguration);
        assert_eq!(classified.code, Some(7000215));
        assert!(
            classified.advice.contains("value, not its ID"),
            "{}",
            classified.advice
        );
        assert!(!classified.class.needs_reconsent());
    }

    #[test]
    fn a_leading_aadsts_in_the_description_is_used_only_without_error_codes() {
        let only_text = body(
            r#"{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity."}"#,
        );
        let classified = classify(400, &only_text);
        assert_eq!(
            (classified.class, classified.code),
            (ConsentRequired, Some(700082))
        );

        let both = body(
            r#"{"error":"invalid_grant","error_description":"AADSTS700082: text","error_codes":[50076]}"#,
        );
        assert_eq!(
            classify(400, &both).class,
            MfaRequired,
            "error_codes win over text"
        );

        let not_leading =
            body(r#"{"error":"invalid_client","error_description":"see AADSTS50076 for details"}"#);
        let classified = classify(400, &not_leading);
        assert_eq!(
            (classified.class, classified.code),
            (AppConfiguration, None)
        );
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        let unavailable = body(r#"{"error":"temporarily_unavailable","error_codes":[]}"#);
        let classified = classify(503, &unavailable);
        assert_eq!(classified.class, Transient);
        assert!(classified.class.is_retryable() && !classified.class.needs_reconsent());
        assert_eq!(
            classify(429, &TokenErrorBody::bare("throttled")).class,
            Throttled
        );
        assert!(Throttled.is_retryable());
        assert_eq!(
            classify(500, &TokenErrorBody::bare("invalid_request")).class,
            Transient
        );
        assert_eq!(
            classify(400, &TokenErrorBody::bare("server_error")).class,
            Transient
        );
    }

    #[test]
    fn an_unknown_invalid_grant_code_means_the_refresh_token_is_unusable() {
        let unknown = body(r#"{"error":"invalid_grant","error_codes":[123456]}"#);
        let classified = classify(400, &unknown);
        assert_eq!(
            (classified.class, classified.code),
            (ConsentRequired, Some(123456))
        );
        assert!(classified.class.needs_reconsent());
    }

    #[test]
    fn error_values_without_a_known_code_fall_back_by_value() {
        for (error, expected) in [
            ("invalid_grant", ConsentRequired),
            ("interaction_required", ConsentRequired),
            ("consent_required", ConsentRequired),
            ("invalid_client", AppConfiguration),
            ("unauthorized_client", AppConfiguration),
            ("invalid_resource", AppConfiguration),
            ("invalid_request", Bug),
            ("unsupported_grant_type", Bug),
            ("invalid_scope", Bug),
            ("something_new", Unknown),
        ] {
            assert_eq!(
                classify(400, &TokenErrorBody::bare(error)).class,
                expected,
                "{error}"
            );
        }
    }

    #[test]
    fn error_bodies_deserialize_leniently() {
        let lenient = body(
            r#"{"error":"invalid_grant","error_codes":null,"claims":"{\"access_token\":{}}","new_field":[1,2]}"#,
        );
        assert!(lenient.error_codes.is_empty());
        assert!(lenient.claims.is_some() && lenient.error_description.is_none());
        assert!(
            serde_json::from_str::<TokenErrorBody>(r#"{"error_codes":[1]}"#).is_err(),
            "error is required"
        );
        let bare = TokenErrorBody::bare("throttled");
        assert_eq!(
            (bare.error.as_str(), bare.error_codes.len()),
            ("throttled", 0)
        );
    }

    #[test]
    fn authorize_redirect_errors_are_classified() {
        let cases = [
            (
                "access_denied",
                Some("AADSTS65004: User declined to consent to access the app."),
                AccessDenied,
                Some(65004),
            ),
            ("access_denied", None, AccessDenied, None),
            (
                "interaction_required",
                Some("AADSTS50079: Due to a configuration change, you must enroll in MFA."),
                MfaRequired,
                Some(50079),
            ),
            (
                "interaction_required",
                Some("AADSTS50076: Due to a configuration change..."),
                MfaRequired,
                Some(50076),
            ),
            ("consent_required", None, ConsentRequired, None),
            (
                "invalid_grant",
                Some("AADSTS65001: The user or administrator has not consented."),
                ConsentRequired,
                Some(65001),
            ),
            (
                "access_denied",
                Some("AADSTS90094: Admin consent is required."),
                PartnerConfiguration,
                Some(90094),
            ),
            (
                "access_denied",
                Some("AADSTS90095: An administrator must approve."),
                PartnerConfiguration,
                Some(90095),
            ),
            ("temporarily_unavailable", None, Transient, None),
            (
                "server_error",
                Some("AADSTS90033: A transient error has occurred."),
                Transient,
                Some(90033),
            ),
            (
                "invalid_request",
                Some("AADSTS50011: The redirect URI does not match."),
                AppConfiguration,
                Some(50011),
            ),
            ("unsupported_response_type", None, Bug, None),
            ("brand_new_error", None, Unknown, None),
        ];
        for (error, description, class, code) in cases {
            let classified = classify_authorize_error(error, description);
            assert_eq!(
                (classified.class, classified.code),
                (class, code),
                "{error} {description:?}"
            );
            assert_eq!(classified.error, error);
        }
        let mfa = classify_authorize_error("interaction_required", Some("AADSTS50079: enroll"));
        assert!(mfa.advice.contains("register MFA"), "{}", mfa.advice);
    }

    #[test]
    fn class_codes_are_stable_and_distinct() {
        let all = [
            ConsentRequired,
            MfaRequired,
            PartnerConfiguration,
            AppConfiguration,
            CustomerConsentMissing,
            AccessDenied,
            Throttled,
            Transient,
            Bug,
            Unknown,
        ];
        let codes: Vec<&str> = all.iter().map(|class| class.as_str()).collect();
        assert_eq!(
            codes,
            [
                "consent_required",
                "mfa_required",
                "partner_configuration",
                "app_configuration",
                "customer_consent_missing",
                "access_denied",
                "throttled",
                "transient",
                "bug",
                "unknown"
            ]
        );
        let reconsent: Vec<ErrorClass> = all
            .into_iter()
            .filter(|class| class.needs_reconsent())
            .collect();
        assert_eq!(reconsent, [ConsentRequired, MfaRequired]);
        let retryable: Vec<ErrorClass> = all
            .into_iter()
            .filter(|class| class.is_retryable())
            .collect();
        assert_eq!(retryable, [Throttled, Transient]);
    }

    #[test]
    fn partner_messages_are_plain_words_without_internals() {
        let mut samples: Vec<Classified> = EXPECTED
            .iter()
            .map(|(code, _)| {
                classify(
                    400,
                    &TokenErrorBody {
                        error_codes: vec![*code],
                        ..TokenErrorBody::bare("invalid_grant")
                    },
                )
            })
            .collect();
        samples.extend(
            ["access_denied", "temporarily_unavailable", "whatever"]
                .map(|e| classify_authorize_error(e, None)),
        );
        for classified in &samples {
            let (title, text) = partner_message(classified);
            assert!(!title.is_empty() && text.len() > 40, "{classified:?}");
            for internal in [
                "AADSTS",
                "SAMGATE_",
                "samgate",
                "refresh token",
                "invalid_grant",
                "PKCE",
            ] {
                assert!(
                    !title.contains(internal) && !text.contains(internal),
                    "{internal} in {text}"
                );
            }
        }
        let (title, text) = partner_message(&classify_authorize_error(
            "interaction_required",
            Some("AADSTS50079: x"),
        ));
        assert!(
            title.contains("set up") && text.contains("aka.ms/mfasetup"),
            "{title}: {text}"
        );
        let (title, _) = partner_message(&classify_authorize_error(
            "access_denied",
            Some("AADSTS65004: declined"),
        ));
        assert_eq!(title, "Consent was declined");
        let (title, _) = partner_message(&classify_authorize_error(
            "access_denied",
            Some("AADSTS90094: x"),
        ));
        assert_eq!(title, "An administrator must approve this app");
    }
}
