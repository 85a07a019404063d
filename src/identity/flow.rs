//! One authorization-code sign-in (OpenID Connect with PKCE) from the redirect to the validated
//! ID token, shared by the partner consent and the staff sign-in with Microsoft.
//!
//! [`AuthCodeFlow::begin`] creates the state, nonce and PKCE verifier and the authorize URL; the
//! caller keeps the returned flow (with whatever else it must remember, the `context`) in its
//! session. At the callback the caller takes the flow out of the session, so that it is used
//! once, and [`AuthCodeFlow::accept`] compares the state in constant time, checks the flow's age
//! and takes Microsoft's error or the code; [`AcceptedCallback::redeem`] redeems the code with the
//! verifier and validates the ID token with the nonce. [`AuthCodeFlow::finish`] does both for a
//! caller with nothing to check in between. What is specific to a caller (MFA, tenant binding,
//! staff membership, Partner Center) stays with the caller.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use url::Url;

use super::TokenResponse;
use super::errors::classify_authorize_error;
use super::{AuthorizeRequest, Classified, IdTokenClaims, IdentityClient, IdentityError, Prompt};

/// Which scopes come before the caller's at authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowScopes {
    /// [`super::OIDC_SCOPES`] (with `offline_access`): a consent that yields a refresh token.
    Consent,
    /// [`super::SIGN_IN_SCOPES`]: a plain sign-in.
    SignIn,
}

/// The parameters of the redirect to Microsoft that [`AuthCodeFlow::begin`] does not make itself.
#[derive(Debug)]
pub struct BeginRequest<'a> {
    /// The base scopes.
    pub scopes_base: FlowScopes,
    /// `organizations`, a tenant GUID or a verified domain; redeem at the same one.
    pub tenant: &'a str,
    /// The registered redirect URI.
    pub redirect_uri: &'a str,
    /// Scopes beyond the base ones.
    pub scopes: &'a [String],
    /// The deliberate prompt.
    pub prompt: Prompt,
    /// Pre-fills the account.
    pub login_hint: Option<&'a str>,
    /// Skips home-realm discovery for a domain.
    pub domain_hint: Option<&'a str>,
}

/// A pending sign-in: what the session remembers between the redirect and the callback. The
/// caller's `context` is stored beside the flow's own fields (flattened), so the session value
/// is one flat object. `Debug` shows neither state, nonce nor verifier. Not `Clone`: finishing
/// consumes it.
#[derive(Serialize, Deserialize)]
pub struct AuthCodeFlow<T> {
    state: String,
    nonce: String,
    code_verifier: String,
    started_at: i64,
    #[serde(flatten)]
    context: T,
}

impl<T: std::fmt::Debug> std::fmt::Debug for AuthCodeFlow<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCodeFlow")
            .field("started_at", &self.started_at)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// What came back to the redirect URI.
#[derive(Debug, Default)]
pub struct Callback<'a> {
    /// The returned `state`.
    pub state: Option<&'a str>,
    /// The authorization code.
    pub code: Option<SecretString>,
    /// Microsoft's `error` and `error_description`.
    pub error: Option<(&'a str, Option<&'a str>)>,
}

/// Where and how the code is redeemed.
#[derive(Debug)]
pub struct Redemption<'a> {
    /// The tenant segment used at authorize (the code is redeemed at the same authority).
    pub tenant: &'a str,
    /// The redirect URI used at authorize.
    pub redirect_uri: &'a str,
    /// The scope of the token request.
    pub scope: &'a str,
}

/// Why a flow did not end in a validated sign-in.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The returned `state` is missing or not this flow's (forged, replayed, another tab).
    #[error("state missing or mismatched")]
    StateMismatch,
    /// The flow is older than the caller allows.
    #[error("sign-in flow expired")]
    Expired,
    /// Microsoft redirected back with an error.
    #[error("Microsoft returned {}", .0.error)]
    Microsoft(Classified),
    /// Neither `code` nor `error` came back.
    #[error("callback without code")]
    MissingCode,
    /// The token endpoint refused the code or could not be reached.
    #[error("code redemption: {0}")]
    Redemption(IdentityError),
    /// The token response has no ID token.
    #[error("no ID token in the token response")]
    NoIdToken,
    /// The ID token failed validation.
    #[error("{0}")]
    IdToken(IdentityError),
}

/// A callback whose state matched its flow and that carried a code: ready to redeem.
#[derive(Debug)]
pub struct AcceptedCallback<T> {
    flow: AuthCodeFlow<T>,
    code: SecretString,
}

/// A finished sign-in: validated ID token claims, the token response, the caller's context.
#[derive(Debug)]
pub struct CompletedFlow<T> {
    /// The validated ID token's claims.
    pub claims: IdTokenClaims,
    /// The token endpoint's answer (access token, refresh token when `offline_access`).
    pub tokens: TokenResponse,
    /// What the caller stored with the flow.
    pub context: T,
}

fn random_value() -> String {
    use base64::Engine;
    use rand::RngExt;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl<T> AuthCodeFlow<T> {
    /// A new flow (fresh state, nonce and PKCE verifier) and the URL to send the browser to.
    pub fn begin(
        identity: &IdentityClient,
        request: &BeginRequest<'_>,
        context: T,
        now: OffsetDateTime,
    ) -> Result<(Self, Url), IdentityError> {
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let flow = Self {
            state: random_value(),
            nonce: random_value(),
            code_verifier: verifier.secret().clone(),
            started_at: now.unix_timestamp(),
            context,
        };
        let authorize = AuthorizeRequest {
            tenant: request.tenant,
            redirect_uri: request.redirect_uri,
            scopes: request.scopes,
            state: &flow.state,
            nonce: &flow.nonce,
            code_challenge: challenge.as_str(),
            prompt: request.prompt,
            login_hint: request.login_hint,
            domain_hint: request.domain_hint,
        };
        let url = match request.scopes_base {
            FlowScopes::Consent => identity.authorize_url(&authorize)?,
            FlowScopes::SignIn => identity.sign_in_url(&authorize)?,
        };
        Ok((flow, url))
    }

    /// What the caller stored with the flow.
    pub fn context(&self) -> &T {
        &self.context
    }

    /// Checks the callback against this flow, in this order: the state (constant time), the
    /// flow's age (at most `max_age_seconds`), Microsoft's error, the code. The flow is consumed
    /// whatever the answer.
    pub fn accept(
        self,
        callback: Callback<'_>,
        max_age_seconds: i64,
        now: OffsetDateTime,
    ) -> Result<AcceptedCallback<T>, FlowError> {
        let state_matches = callback
            .state
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.state.as_bytes())));
        if !state_matches {
            return Err(FlowError::StateMismatch);
        }
        if now.unix_timestamp() - self.started_at > max_age_seconds {
            return Err(FlowError::Expired);
        }
        if let Some((error, description)) = callback.error {
            return Err(FlowError::Microsoft(classify_authorize_error(
                error,
                description,
            )));
        }
        let code = callback.code.ok_or(FlowError::MissingCode)?;
        Ok(AcceptedCallback { flow: self, code })
    }

    /// [`accept`](Self::accept), then [`AcceptedCallback::redeem`].
    pub async fn finish(
        self,
        identity: &IdentityClient,
        callback: Callback<'_>,
        max_age_seconds: i64,
        redemption: &Redemption<'_>,
        now: OffsetDateTime,
    ) -> Result<CompletedFlow<T>, FlowError> {
        self.accept(callback, max_age_seconds, now)?
            .redeem(identity, redemption, now)
            .await
    }
}

impl<T> AcceptedCallback<T> {
    /// What the caller stored with the flow.
    pub fn context(&self) -> &T {
        &self.flow.context
    }

    /// Redeems the code with the flow's PKCE verifier and validates the ID token with its nonce.
    pub async fn redeem(
        self,
        identity: &IdentityClient,
        redemption: &Redemption<'_>,
        now: OffsetDateTime,
    ) -> Result<CompletedFlow<T>, FlowError> {
        let AuthCodeFlow {
            nonce,
            code_verifier,
            context,
            ..
        } = self.flow;
        let verifier = SecretString::from(code_verifier);
        let tokens = identity
            .redeem_code(
                redemption.tenant,
                &self.code,
                &verifier,
                redemption.redirect_uri,
                redemption.scope,
            )
            .await
            .map_err(FlowError::Redemption)?;
        let id_token = tokens.id_token.as_ref().ok_or(FlowError::NoIdToken)?;
        let claims = identity
            .validate_id_token(id_token, &nonce, now)
            .await
            .map_err(FlowError::IdToken)?;
        Ok(CompletedFlow {
            claims,
            tokens,
            context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Context {
        return_to: String,
    }

    fn client() -> IdentityClient {
        IdentityClient::new(
            reqwest::Client::new(),
            Url::parse("https://login.example.test").expect("url"),
            uuid::Uuid::nil(),
            super::super::ClientCredential::Secret(SecretString::from("s")),
        )
    }

    fn begin(now: OffsetDateTime) -> (AuthCodeFlow<Context>, Url) {
        AuthCodeFlow::begin(
            &client(),
            &BeginRequest {
                scopes_base: FlowScopes::SignIn,
                tenant: "organizations",
                redirect_uri: "https://samgate.example.test/cb",
                scopes: &[],
                prompt: Prompt::SelectAccount,
                login_hint: None,
                domain_hint: None,
            },
            Context {
                return_to: "/admin".into(),
            },
            now,
        )
        .expect("begin")
    }

    fn query(url: &Url, name: &str) -> String {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{name} in the authorize URL"))
    }

    fn with_code(state: Option<&str>) -> Callback<'_> {
        Callback {
            state,
            code: Some(SecretString::from("code")),
            error: None,
        }
    }

    #[test]
    fn the_returned_state_must_be_the_flows_own() {
        let now = OffsetDateTime::now_utc();
        let (flow, url) = begin(now);
        let state = query(&url, "state");
        assert!(matches!(
            begin(now).0.accept(with_code(Some(&state)), 600, now),
            Err(FlowError::StateMismatch)
        ));
        let (other, _) = begin(now);
        assert!(matches!(
            other.accept(with_code(None), 600, now),
            Err(FlowError::StateMismatch)
        ));
        let (other, _) = begin(now);
        assert!(matches!(
            other.accept(with_code(Some("")), 600, now),
            Err(FlowError::StateMismatch)
        ));
        let accepted = flow
            .accept(with_code(Some(&state)), 600, now)
            .expect("own state");
        assert_eq!(accepted.context().return_to, "/admin");
    }

    #[test]
    fn a_consumed_flow_cannot_be_replayed() {
        let now = OffsetDateTime::now_utc();
        let (flow, url) = begin(now);
        let state = query(&url, "state");
        // The session holds the flow as a value; the callback takes it out before using it.
        let mut session = Some(serde_json::to_value(&flow).expect("serialise"));
        let taken: AuthCodeFlow<Context> =
            serde_json::from_value(session.take().expect("stored")).expect("deserialise");
        assert!(taken.accept(with_code(Some(&state)), 600, now).is_ok());
        assert!(session.is_none(), "the first callback consumed the flow");
        // A replayed callback meets whatever the session holds next: a newer flow refuses it.
        let (newer, _) = begin(now);
        assert!(matches!(
            newer.accept(with_code(Some(&state)), 600, now),
            Err(FlowError::StateMismatch)
        ));
    }

    #[test]
    fn old_flows_errors_and_missing_codes_are_refused_after_the_state() {
        let now = OffsetDateTime::now_utc();
        let (flow, url) = begin(now);
        let state = query(&url, "state");
        let later = now + time::Duration::seconds(601);
        assert!(matches!(
            flow.accept(with_code(Some(&state)), 600, later),
            Err(FlowError::Expired)
        ));
        let (flow, url) = begin(now);
        let state = query(&url, "state");
        let refused = flow.accept(
            Callback {
                state: Some(&state),
                code: None,
                error: Some(("access_denied", None)),
            },
            600,
            now,
        );
        assert!(matches!(refused, Err(FlowError::Microsoft(c)) if c.error == "access_denied"));
        let (flow, url) = begin(now);
        let state = query(&url, "state");
        assert!(matches!(
            flow.accept(
                Callback {
                    state: Some(&state),
                    ..Callback::default()
                },
                600,
                now
            ),
            Err(FlowError::MissingCode)
        ));
    }

    #[test]
    fn the_session_value_is_flat_and_debug_shows_no_secret() {
        let now = OffsetDateTime::now_utc();
        let (flow, url) = begin(now);
        let value = serde_json::to_value(&flow).expect("serialise");
        let mut keys: Vec<_> = value.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["code_verifier", "nonce", "return_to", "started_at", "state"]
        );
        let debug = format!("{flow:?}");
        for secret in [
            query(&url, "state"),
            query(&url, "nonce"),
            value["code_verifier"]
                .as_str()
                .expect("verifier")
                .to_owned(),
        ] {
            assert!(!debug.contains(&secret), "{debug}");
        }
        assert!(debug.contains("/admin"), "{debug}");
        assert_eq!(query(&url, "code_challenge_method"), "S256");
    }
}
