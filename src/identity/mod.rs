//! Microsoft identity platform client: the authorize URL, code redemption and refresh at the
//! token endpoint, ID token validation (templated multitenant issuer), error classification, and
//! [`AuthCodeFlow`], the one authorization-code sign-in both consent and staff sign-in use.
//! Only this module knows identity-platform paths and payloads.
//! Reference: shared/docs/microsoft-protocols.md sections 1–3.

pub mod certificate;
pub mod errors;
mod flow;
mod id_token;
#[cfg(test)]
mod recorded_tests;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

pub use crate::domain::{MSA_TENANT, TenantId};
pub use errors::{Classified, ErrorClass};
pub use flow::{
    AcceptedCallback, AuthCodeFlow, BeginRequest, Callback, CompletedFlow, FlowError, FlowScopes,
    Redemption,
};
pub use id_token::{IdTokenClaims, IdTokenError, KeySet};

/// The OIDC scopes every consent asks for; `offline_access` is what yields a refresh token.
pub const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "offline_access"];

/// The scopes of a staff sign-in (OpenID Connect only: no refresh token, no resource).
pub const SIGN_IN_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// How the app authenticates at the token endpoint.
pub enum ClientCredential {
    /// `client_secret` in the form body.
    Secret(SecretString),
    /// A signed client assertion (RFC 7523) with the app's certificate key.
    Certificate {
        /// base64url SHA-256 of the certificate's DER, for the `x5t#S256` header.
        thumbprint_s256: String,
        /// The private key that signs assertions.
        key: jsonwebtoken::EncodingKey,
    },
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("ClientCredential::Secret([redacted])"),
            Self::Certificate {
                thumbprint_s256, ..
            } => write!(f, "ClientCredential::Certificate({thumbprint_s256})"),
        }
    }
}

impl ClientCredential {
    /// Loads a certificate credential from PEM files (certificate and PKCS#8 or PKCS#1 RSA key).
    pub fn from_certificate_files(
        certificate: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, String> {
        use sha2::{Digest, Sha256};
        let cert_pem = std::fs::read(certificate)
            .map_err(|e| format!("cannot read {}: {e}", certificate.display()))?;
        let cert = pem::parse(&cert_pem)
            .map_err(|_| format!("{} is not a PEM certificate", certificate.display()))?;
        let thumbprint_s256 = b64url(&Sha256::digest(cert.contents()));
        let key_pem = zeroize::Zeroizing::new(
            std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?,
        );
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&key_pem)
            .map_err(|_| format!("{} is not a PEM RSA private key", key.display()))?;
        Ok(Self::Certificate {
            thumbprint_s256,
            key,
        })
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What to put in `prompt` (Microsoft accepts one value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Show the consent screen even when consent exists: a first consent, tenant-wide.
    Consent,
    /// Force a fresh sign-in (and so MFA) even with a browser session: re-consent.
    Login,
    /// Let the user pick the account.
    SelectAccount,
}

impl Prompt {
    fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Login => "login",
            Self::SelectAccount => "select_account",
        }
    }
}

/// The parameters of one authorize redirect.
#[derive(Debug)]
pub struct AuthorizeRequest<'a> {
    /// `organizations`, a tenant GUID or a verified domain.
    pub tenant: &'a str,
    /// The registered redirect URI.
    pub redirect_uri: &'a str,
    /// Scopes beyond the OIDC ones.
    pub scopes: &'a [String],
    /// The CSRF value, echoed back.
    pub state: &'a str,
    /// Bound into the ID token.
    pub nonce: &'a str,
    /// `base64url(sha256(verifier))`.
    pub code_challenge: &'a str,
    /// The deliberate prompt.
    pub prompt: Prompt,
    /// Pre-fills the account.
    pub login_hint: Option<&'a str>,
    /// Skips home-realm discovery for a domain.
    pub domain_hint: Option<&'a str>,
}

/// A token endpoint success. Tokens are secrets; `Debug` shows none of them.
#[derive(Debug)]
pub struct TokenResponse {
    /// The access token for the requested resource.
    pub access_token: SecretString,
    /// The new refresh token (every refresh returns one; the old one stays valid).
    pub refresh_token: Option<SecretString>,
    /// The ID token, when `openid` was requested.
    pub id_token: Option<SecretString>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Granted scopes.
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(deserialize_with = "number_or_string")]
    expires_in: u64,
    #[serde(default)]
    scope: Option<String>,
}

/// v2 sends numbers, v1 sends strings (protocol page 1.5): accept both.
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        String(String),
    }
    match NumberOrString::deserialize(d)? {
        NumberOrString::Number(n) => Ok(n),
        NumberOrString::String(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// Why a call to the identity platform failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Microsoft answered with an error; classified, with the AADSTS code kept.
    #[error("the identity platform refused: {} (AADSTS{})", .0.error, .0.code.map(|c| c.to_string()).unwrap_or_else(|| "?".into()))]
    Refused(Classified),
    /// Microsoft could not be reached or did not answer in time.
    #[error("the identity platform is unreachable: {0}")]
    Unreachable(String),
    /// Microsoft answered something that is not the protocol.
    #[error("unexpected answer from the identity platform: {0}")]
    Protocol(String),
    /// The ID token failed validation.
    #[error("ID token rejected: {0}")]
    IdToken(#[from] IdTokenError),
}

impl IdentityError {
    /// The error class (for refusals), or `Transient` for network trouble.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Refused(c) => c.class,
            Self::Unreachable(_) => ErrorClass::Transient,
            Self::Protocol(_) | Self::IdToken(_) => ErrorClass::Unknown,
        }
    }
}

/// The identity platform client of one CPV app.
#[derive(Debug)]
pub struct IdentityClient {
    http: reqwest::Client,
    authority: Url,
    client_id: Uuid,
    credential: ClientCredential,
    keys: KeySet,
}

impl IdentityClient {
    /// A client for the app `client_id` at `authority` (e.g. `https://login.microsoftonline.com`).
    pub fn new(
        http: reqwest::Client,
        authority: Url,
        client_id: Uuid,
        credential: ClientCredential,
    ) -> Self {
        let keys = KeySet::new(http.clone(), authority.clone(), client_id);
        Self {
            http,
            authority,
            client_id,
            credential,
            keys,
        }
    }

    /// The app's client id.
    pub fn client_id(&self) -> Uuid {
        self.client_id
    }

    fn endpoint(&self, tenant: &str, tail: &str) -> Result<Url, IdentityError> {
        let base = self.authority.as_str().trim_end_matches('/');
        let tenant = urlencode_segment(tenant);
        Url::parse(&format!("{base}/{tenant}/{tail}"))
            .map_err(|e| IdentityError::Protocol(format!("bad authority URL: {e}")))
    }

    /// The URL the browser is sent to (v2 authorize endpoint, `response_mode=query`).
    pub fn authorize_url(&self, request: &AuthorizeRequest<'_>) -> Result<Url, IdentityError> {
        self.authorize_url_with(&OIDC_SCOPES, request)
    }

    /// Like [`authorize_url`](Self::authorize_url) for a plain sign-in: [`SIGN_IN_SCOPES`]
    /// (without `offline_access`) and then `request.scopes`.
    pub fn sign_in_url(&self, request: &AuthorizeRequest<'_>) -> Result<Url, IdentityError> {
        self.authorize_url_with(&SIGN_IN_SCOPES, request)
    }

    fn authorize_url_with(
        &self,
        base_scopes: &[&str],
        request: &AuthorizeRequest<'_>,
    ) -> Result<Url, IdentityError> {
        let mut url = self.endpoint(request.tenant, "oauth2/v2.0/authorize")?;
        let scope = base_scopes
            .iter()
            .map(|s| (*s).to_owned())
            .chain(request.scopes.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.client_id.to_string())
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", request.redirect_uri)
                // A query redirect is a top-level GET, so the SameSite=Lax session cookie comes
                // along; form_post would be a cross-site POST that drops it.
                .append_pair("response_mode", "query")
                .append_pair("scope", &scope)
                .append_pair("state", request.state)
                .append_pair("nonce", request.nonce)
                .append_pair("code_challenge", request.code_challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("prompt", request.prompt.as_str());
            if let Some(hint) = request.login_hint {
                query.append_pair("login_hint", hint);
            }
            if let Some(hint) = request.domain_hint {
                query.append_pair("domain_hint", hint);
            }
        }
        Ok(url)
    }

    /// Redeems an authorization code at `tenant` (the authority the code was issued at).
    pub async fn redeem_code(
        &self,
        tenant: &str,
        code: &SecretString,
        code_verifier: &SecretString,
        redirect_uri: &str,
        scope: &str,
    ) -> Result<TokenResponse, IdentityError> {
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.expose_secret().to_owned()),
            ("code_verifier", code_verifier.expose_secret().to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("scope", scope.to_owned()),
        ];
        self.token_request(tenant, form).await
    }

    /// Exchanges a refresh token for an access token for `scope` at `tenant` (the partner's
    /// tenant for Partner Center, a customer's tenant for Graph in that customer).
    pub async fn refresh(
        &self,
        tenant: &str,
        refresh_token: &SecretString,
        scope: &str,
    ) -> Result<TokenResponse, IdentityError> {
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
            ("scope", scope.to_owned()),
        ];
        self.token_request(tenant, form).await
    }

    /// Requests an app-only token for `scope` (`{resource}/.default`) at `tenant` with the
    /// app's own credential (client credentials grant), which proves the credential works
    /// without any partner (protocol page §1.1: the app is registered in the CPV's tenant).
    pub async fn app_token(
        &self,
        tenant: &str,
        scope: &str,
    ) -> Result<TokenResponse, IdentityError> {
        let form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("scope", scope.to_owned()),
        ];
        self.token_request(tenant, form).await
    }

    /// The token endpoint of `tenant` at the configured authority (what doctor prints).
    pub fn token_endpoint(&self, tenant: &str) -> Result<Url, IdentityError> {
        self.endpoint(tenant, "oauth2/v2.0/token")
    }

    async fn token_request(
        &self,
        tenant: &str,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, IdentityError> {
        let url = self.token_endpoint(tenant)?;
        form.push(("client_id", self.client_id.to_string()));
        match &self.credential {
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose_secret().to_owned()));
            }
            ClientCredential::Certificate {
                thumbprint_s256,
                key,
            } => {
                let assertion = self.client_assertion(url.as_str(), thumbprint_s256, key)?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        let body = zeroize::Zeroizing::new(
            serde_urlencoded::to_string(&form)
                .map_err(|e| IdentityError::Protocol(format!("form encoding: {e}")))?,
        );
        // The form holds secrets: wipe our copies as soon as the body is built.
        for (_, value) in &mut form {
            zeroize::Zeroize::zeroize(value);
        }
        let response = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body.as_bytes().to_vec())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| IdentityError::Unreachable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| IdentityError::Unreachable(e.without_url().to_string()))?;
        if status == 200 {
            let raw: RawTokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
                IdentityError::Protocol("token response is not the expected JSON".into())
            })?;
            return Ok(TokenResponse {
                access_token: SecretString::from(raw.access_token),
                refresh_token: raw.refresh_token.map(SecretString::from),
                id_token: raw.id_token.map(SecretString::from),
                expires_in: raw.expires_in,
                scope: raw.scope,
            });
        }
        let body: errors::TokenErrorBody = match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(_) if status == 429 || status >= 500 => {
                errors::TokenErrorBody::bare(if status == 429 {
                    "throttled"
                } else {
                    "temporarily_unavailable"
                })
            }
            Err(_) => {
                return Err(IdentityError::Protocol(format!(
                    "token endpoint answered HTTP {status} without an OAuth error body"
                )));
            }
        };
        Err(IdentityError::Refused(errors::classify(status, &body)))
    }

    fn client_assertion(
        &self,
        audience: &str,
        thumbprint_s256: &str,
        key: &jsonwebtoken::EncodingKey,
    ) -> Result<String, IdentityError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(thumbprint_s256.to_owned());
        let claims = serde_json::json!({
            "aud": audience,
            "iss": self.client_id.to_string(),
            "sub": self.client_id.to_string(),
            "jti": Uuid::new_v4().to_string(),
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        });
        jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| IdentityError::Protocol(format!("cannot sign client assertion: {e}")))
    }

    /// Validates an ID token from this app's sign-in: signature by `kid`, templated issuer with
    /// `tid`, audience, expiry and nonce.
    pub async fn validate_id_token(
        &self,
        id_token: &SecretString,
        expected_nonce: &str,
        now: time::OffsetDateTime,
    ) -> Result<IdTokenClaims, IdentityError> {
        Ok(self
            .keys
            .validate(id_token.expose_secret(), expected_nonce, now)
            .await?)
    }
}

fn urlencode_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Reads the claims of an access token samgate just received from the token endpoint over TLS,
/// without verifying its signature (that is the resource's job): used only to read `amr`.
pub fn access_token_amr(access_token: &SecretString) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        amr: Option<Vec<String>>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(access_token.expose_secret())
        .ok()
        .and_then(|c| c.amr)
}
