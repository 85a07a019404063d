//! ID token validation for a multitenant app: keys from the JWKS by `kid` (cached, re-fetched on an
//! unknown `kid`), the templated issuer resolved with the token's `tid` and compared exactly,
//! audience, expiry with a small skew against samgate's clock, nonce in constant time.
//! Reference: microsoft-protocols.md 3.2 and 3.3.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;
use url::Url;
use uuid::Uuid;

use crate::domain::MSA_TENANT;

/// Clock skew tolerated on `exp`/`nbf`.
const SKEW_SECONDS: i64 = 120;
/// An unknown `kid` re-fetches the keys at most this often (a forged `kid` cannot make us hammer).
const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Keys are re-fetched after this long anyway (Microsoft rotates them).
const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    /// Not a JWT, or a JWT we do not accept (algorithm, no `kid`).
    #[error("malformed ID token: {0}")]
    Malformed(&'static str),
    /// No published key has this `kid`.
    #[error("ID token signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify, or the audience is not this app.
    #[error("ID token signature or audience invalid")]
    Signature,
    /// `iss` is not the key's issuer template resolved with `tid`.
    #[error("ID token issuer does not match its tenant")]
    Issuer,
    /// `tid` is missing, not a GUID, or the personal-accounts tenant.
    #[error("ID token tenant is not an organisation")]
    Tenant,
    /// A claim samgate needs is absent (`tid`; `oid` when there is no `home_oid` either).
    #[error("ID token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// Expired, or not yet valid.
    #[error("ID token is expired or not yet valid")]
    Expired,
    /// The nonce is not the one this sign-in sent.
    #[error("ID token nonce does not match")]
    Nonce,
    /// The keys could not be fetched.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// The claims samgate uses from a v2 ID token.
#[derive(Debug, Clone)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The tenant that issued the token (the user's own, unless the user is a guest there).
    pub tid: String,
    /// The user's immutable object id: `oid`, or `home_oid` for a user from another tenant (a
    /// GDAP or B2B sign-in has no object in the issuing tenant, MSAL .NET's test data).
    pub oid: Uuid,
    /// The user's home tenant when it is not `tid` (`home_tid`).
    home_tid: Option<Uuid>,
    /// Display only.
    pub preferred_username: Option<String>,
    /// Display only.
    pub name: Option<String>,
    /// Authentication methods, when the token carries them (v2 ID tokens normally do not).
    pub amr: Option<Vec<String>>,
}

impl IdTokenClaims {
    /// The tenant as a GUID (validated).
    pub fn tenant(&self) -> Uuid {
        Uuid::parse_str(&self.tid).unwrap_or_default()
    }

    /// The user's home tenant, when the token says it differs from [`Self::tenant`].
    pub fn home_tenant(&self) -> Option<Uuid> {
        self.home_tid.filter(|home| *home != self.tenant())
    }
}

/// The token's claims as sent: everything optional, so a missing claim is reported by name
/// rather than as a signature failure.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<Uuid>,
    #[serde(default)]
    home_oid: Option<Uuid>,
    #[serde(default)]
    home_tid: Option<Uuid>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    amr: Option<Vec<String>>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
}

struct SigningKey {
    key: DecodingKey,
    issuer: String,
}

struct Cache {
    keys: HashMap<String, SigningKey>,
    fetched_at: Option<Instant>,
    refetched_for_unknown_kid_at: Option<Instant>,
}

/// The identity platform's signing keys, cached.
pub struct KeySet {
    http: reqwest::Client,
    authority: Url,
    client_id: Uuid,
    cache: RwLock<Cache>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("authority", &self.authority.as_str())
            .finish()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
}

impl KeySet {
    /// Keys of the `organizations` metadata at `authority`.
    pub fn new(http: reqwest::Client, authority: Url, client_id: Uuid) -> Self {
        Self {
            http,
            authority,
            client_id,
            cache: RwLock::new(Cache {
                keys: HashMap::new(),
                fetched_at: None,
                refetched_for_unknown_kid_at: None,
            }),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, SigningKey>, IdTokenError> {
        let unavailable =
            |e: reqwest::Error| IdTokenError::KeysUnavailable(e.without_url().to_string());
        let base = self.authority.as_str().trim_end_matches('/');
        let discovery: Discovery = self
            .http
            .get(format!(
                "{base}/organizations/v2.0/.well-known/openid-configuration"
            ))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let jwks: Jwks = self
            .http
            .get(&discovery.jwks_uri)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        Ok(signing_keys(jwks, &discovery.issuer))
    }

    /// Keys fixed at construction from a JWKS document and never fetched (fuzzing, offline
    /// checks): `issuer` stands in for the discovery document's templated issuer.
    pub fn pinned(client_id: Uuid, issuer: &str, jwks_json: &[u8]) -> Result<Self, IdTokenError> {
        let jwks: Jwks = serde_json::from_slice(jwks_json)
            .map_err(|e| IdTokenError::KeysUnavailable(e.to_string()))?;
        // Timestamps far in the future: the keys never count as stale and an unknown `kid`
        // never triggers a fetch, so no network is touched.
        let never = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        Ok(Self {
            http: reqwest::Client::new(),
            authority: Url::parse("http://127.0.0.1:9/")
                .map_err(|e| IdTokenError::KeysUnavailable(e.to_string()))?,
            client_id,
            cache: RwLock::new(Cache {
                keys: signing_keys(jwks, issuer),
                fetched_at: Some(never),
                refetched_for_unknown_kid_at: Some(never),
            }),
        })
    }

    async fn with_key<T>(
        &self,
        kid: &str,
        use_key: impl Fn(&SigningKey) -> T,
    ) -> Result<T, IdTokenError> {
        {
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < KEYS_MAX_AGE);
            if fresh && let Some(key) = cache.keys.get(kid) {
                return Ok(use_key(key));
            }
        }
        let mut cache = self.cache.write().await;
        let fresh = cache
            .fetched_at
            .is_some_and(|at| at.elapsed() < KEYS_MAX_AGE);
        // Missing or stale keys are always fetched; an unknown `kid` in fresh keys (a rotation,
        // or a forgery) re-fetches at most once per interval, whenever the last fetch happened.
        let may_refetch = !fresh
            || cache
                .refetched_for_unknown_kid_at
                .is_none_or(|at| at.elapsed() >= REFETCH_INTERVAL);
        // A request that waited for the lock may find the key another one just fetched.
        if may_refetch && !(fresh && cache.keys.contains_key(kid)) {
            cache.keys = self.fetch().await?;
            let now = Instant::now();
            if fresh {
                cache.refetched_for_unknown_kid_at = Some(now);
            }
            cache.fetched_at = Some(now);
        }
        cache
            .keys
            .get(kid)
            .map(use_key)
            .ok_or(IdTokenError::UnknownKey)
    }

    /// Validates `token` and returns its claims.
    pub async fn validate(
        &self,
        token: &str,
        expected_nonce: &str,
        now: time::OffsetDateTime,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed("not a JWT"))?;
        if header.alg != Algorithm::RS256 {
            return Err(IdTokenError::Malformed("algorithm is not RS256"));
        }
        let kid = header.kid.ok_or(IdTokenError::Malformed("no kid"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[self.client_id.to_string()]);
        // Time is checked below against samgate's clock; the issuer needs the template.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::from(["aud".to_owned()]);
        let (claims, issuer_template) = self
            .with_key(&kid, |key| {
                jsonwebtoken::decode::<RawClaims>(token, &key.key, &validation)
                    .map(|data| (data.claims, key.issuer.clone()))
            })
            .await?
            .map_err(|_| IdTokenError::Signature)?;

        let tid_claim = claims.tid.ok_or(IdTokenError::MissingClaim("tid"))?;
        let tid = Uuid::parse_str(&tid_claim).map_err(|_| IdTokenError::Tenant)?;
        if tid == MSA_TENANT || tid.is_nil() {
            return Err(IdTokenError::Tenant);
        }
        let expected_issuer = replace_tenant_placeholder(&issuer_template, &tid_claim);
        let iss = claims.iss.ok_or(IdTokenError::MissingClaim("iss"))?;
        if iss != expected_issuer {
            return Err(IdTokenError::Issuer);
        }
        let now = now.unix_timestamp();
        let exp = claims.exp.ok_or(IdTokenError::Expired)?;
        if exp + SKEW_SECONDS < now || claims.nbf.is_some_and(|nbf| nbf - SKEW_SECONDS > now) {
            return Err(IdTokenError::Expired);
        }
        let nonce = claims.nonce.as_deref().unwrap_or("");
        if !bool::from(nonce.as_bytes().ct_eq(expected_nonce.as_bytes())) {
            return Err(IdTokenError::Nonce);
        }
        let oid = claims
            .oid
            .or(claims.home_oid)
            .ok_or(IdTokenError::MissingClaim("oid"))?;
        Ok(IdTokenClaims {
            iss,
            tid: tid_claim,
            oid,
            home_tid: claims.home_tid,
            preferred_username: claims.preferred_username,
            name: claims.name,
            amr: claims.amr,
        })
    }
}

/// The usable RSA keys of a JWKS; a key without its own `issuer` gets `default_issuer`.
fn signing_keys(jwks: Jwks, default_issuer: &str) -> HashMap<String, SigningKey> {
    let mut keys = HashMap::new();
    for jwk in jwks.keys {
        let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
            continue;
        };
        if jwk.kty.as_deref().is_some_and(|kty| kty != "RSA") {
            continue;
        }
        if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
            let issuer = jwk.issuer.unwrap_or_else(|| default_issuer.to_owned());
            keys.insert(kid, SigningKey { key, issuer });
        }
    }
    keys
}

/// Replaces `{tenantid}` (any case) in a templated issuer with the token's `tid`.
fn replace_tenant_placeholder(template: &str, tid: &str) -> String {
    const PLACEHOLDER: &str = "{tenantid}";
    match template.to_ascii_lowercase().find(PLACEHOLDER) {
        Some(at) => format!(
            "{}{tid}{}",
            &template[..at],
            &template[at + PLACEHOLDER.len()..]
        ),
        None => template.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_template_is_resolved_case_insensitively() {
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert_eq!(
            replace_tenant_placeholder("https://login.microsoftonline.com/{tenantid}/v2.0", tid),
            format!("https://login.microsoftonline.com/{tid}/v2.0")
        );
        assert_eq!(
            replace_tenant_placeholder("https://login.microsoftonline.com/{TenantId}/v2.0", tid),
            format!("https://login.microsoftonline.com/{tid}/v2.0")
        );
        // An exact (non-templated) issuer stays as it is, so a foreign tid cannot match it.
        assert_eq!(
            replace_tenant_placeholder(
                "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
                tid
            ),
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
        );
    }
}
