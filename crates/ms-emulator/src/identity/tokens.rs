//! Minting ID tokens (v2) and access tokens in the format of their resource (Partner Center and
//! Graph: v1-format, `iss` `https://sts.windows.net/{tid}/`), and validating them for the PC and
//! Graph surfaces. The first non-OIDC scope picks the resource (protocol page §1.4).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{App, Shared, User};

pub const PARTNER_CENTER: &str = "https://api.partnercenter.microsoft.com";
pub const GRAPH: &str = "https://graph.microsoft.com";
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
pub const PARTNER_CENTER_APP_ID: &str = "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd";
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The resource a token is for, with the scope names inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceScopes {
    /// Audience URI, e.g. `https://api.partnercenter.microsoft.com`.
    pub resource: String,
    /// Scope names without the resource prefix (`user_impersonation`, `User.Read`, `.default`).
    pub names: Vec<String>,
}

impl ResourceScopes {
    /// The `scope` value of the token response: resource-qualified names.
    pub fn response_scope(&self) -> String {
        self.names
            .iter()
            .map(|n| format!("{}/{n}", self.resource))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn is_default(&self) -> bool {
        self.names.iter().any(|n| n == ".default")
    }
}

/// Splits a scope into (resource, name); unqualified names mean Microsoft Graph.
fn split_scope(scope: &str) -> (String, String) {
    if let Some(rest) = scope
        .strip_prefix("https://")
        .or_else(|| scope.strip_prefix("http://"))
    {
        if let Some((host, name)) = rest.rsplit_once('/') {
            let scheme = if scope.starts_with("https://") {
                "https://"
            } else {
                "http://"
            };
            return (format!("{scheme}{host}"), name.to_owned());
        }
        return (scope.to_owned(), ".default".to_owned());
    }
    if let Some(name) = scope.strip_prefix(&format!("{GRAPH_APP_ID}/")) {
        return (GRAPH.to_owned(), name.to_owned());
    }
    (GRAPH.to_owned(), scope.to_owned())
}

/// Picks the resource from a scope list: the first non-OIDC scope decides; scopes of other
/// resources are ignored (Microsoft issues the token for the first resource). OIDC-only → Graph User.Read.
pub fn resource_scopes(scopes: &[String]) -> ResourceScopes {
    let mut resource: Option<String> = None;
    let mut names = Vec::new();
    for s in scopes.iter().filter(|s| !OIDC_SCOPES.contains(&s.as_str())) {
        let (r, n) = split_scope(s);
        let r = r.trim_end_matches('/').to_owned();
        match &resource {
            None => {
                resource = Some(r);
                names.push(n);
            }
            Some(existing) if existing.eq_ignore_ascii_case(&r) => {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            Some(_) => {}
        }
    }
    match resource {
        Some(resource) => ResourceScopes { resource, names },
        None => ResourceScopes {
            resource: GRAPH.to_owned(),
            names: vec!["User.Read".to_owned()],
        },
    }
}

/// Splits a space-separated scope parameter.
pub fn parse_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// How the client authenticated: "1" secret, "2" certificate (the `appidacr` claim).
#[derive(Clone, Copy, Debug)]
pub enum ClientAuth {
    Secret,
    Certificate,
}

impl ClientAuth {
    fn acr(self) -> &'static str {
        match self {
            ClientAuth::Secret => "1",
            ClientAuth::Certificate => "2",
        }
    }
}

/// Access-token lifetime: the configured one, else random 60–90 minutes like Microsoft.
pub fn access_token_lifetime(shared: &Shared) -> i64 {
    match shared.settings().access_token_lifetime {
        Some(d) => d.as_secs() as i64,
        None => rand::random_range(3600..=5400),
    }
}

/// Pairwise `sub`: stable per user and app.
fn pairwise_sub(oid: Uuid, client_id: Uuid) -> String {
    let digest = Sha256::digest(format!("{oid}:{client_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..32])
}

fn unique_token_id() -> String {
    crate::state::random_token(16)
}

/// Claims shared by delegated access tokens.
pub struct DelegatedToken<'a> {
    pub app: &'a App,
    pub user: &'a User,
    pub tenant: Uuid,
    pub amr: &'a [String],
    pub auth_time: OffsetDateTime,
    pub scopes: &'a ResourceScopes,
    pub scp: Vec<String>,
    pub client_auth: ClientAuth,
    pub lifetime: i64,
}

/// A delegated (app+user) access token in v1 format.
pub fn delegated_access_token(shared: &Shared, t: &DelegatedToken<'_>) -> anyhow::Result<String> {
    let now = shared.now().unix_timestamp();
    let name_parts: Vec<&str> = t.user.display_name.splitn(2, ' ').collect();
    let mut claims = json!({
        "aud": t.scopes.resource,
        "iss": format!("https://sts.windows.net/{}/", t.tenant),
        "iat": now, "nbf": now, "exp": now + t.lifetime,
        "acr": "1",
        "aio": unique_token_id(),
        "amr": t.amr,
        "app_displayname": t.app.display_name,
        "appid": t.app.client_id,
        "appidacr": t.client_auth.acr(),
        "auth_time": t.auth_time.unix_timestamp(),
        "given_name": name_parts.first().copied().unwrap_or_default(),
        "family_name": name_parts.get(1).copied().unwrap_or_default(),
        "idtyp": "user",
        "ipaddr": "127.0.0.1",
        "name": t.user.display_name,
        "oid": t.user.oid,
        "scp": t.scp.join(" "),
        "sub": pairwise_sub(t.user.oid, t.app.client_id),
        "tid": t.tenant,
        "unique_name": t.user.upn,
        "upn": t.user.upn,
        "uti": unique_token_id(),
        "ver": "1.0",
    });
    if t.tenant != t.user.tenant {
        // A partner user acting in a customer tenant (GDAP): the home tenant is the identity provider.
        claims["idp"] = Value::from(format!("https://sts.windows.net/{}/", t.user.tenant));
    }
    shared.sign(&claims)
}

/// An app-only access token (`roles` instead of `scp`, no user claims).
pub fn app_access_token(
    shared: &Shared,
    app: &App,
    tenant: Uuid,
    resource: &str,
    client_auth: ClientAuth,
    lifetime: i64,
) -> anyhow::Result<String> {
    let now = shared.now().unix_timestamp();
    let mut claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now, "nbf": now, "exp": now + lifetime,
        "aio": unique_token_id(),
        "app_displayname": app.display_name,
        "appid": app.client_id,
        "appidacr": client_auth.acr(),
        "idp": format!("https://sts.windows.net/{tenant}/"),
        "idtyp": "app",
        "oid": Uuid::new_v5(&app.client_id, tenant.as_bytes()),
        "sub": Uuid::new_v5(&app.client_id, tenant.as_bytes()),
        "tid": tenant,
        "uti": unique_token_id(),
        "ver": "1.0",
    });
    if !app.app_roles.is_empty() {
        claims["roles"] = json!(app.app_roles);
    }
    shared.sign(&claims)
}

/// A v2 ID token issued by `tenant` (the user's own, or a customer's authority).
///
/// No `amr` unless switched on: v2 `claims_supported` lists none and Microsoft says it is "not in
/// v2.0" (MicrosoftDocs/azure-docs#85021); MSAL .NET's recorded v2 ID tokens have none.
/// Issued by another tenant than the user's (a partner user refreshing at a customer authority), the
/// token names that tenant in `iss`/`tid` and the user by `home_oid`/`home_tid`/`idp`, without `oid`
/// (the user has no object there; MSAL .NET's test data for foreign-tenant sign-ins).
pub fn id_token(
    shared: &Shared,
    app: &App,
    user: &User,
    tenant: Uuid,
    amr: &[String],
    nonce: Option<&str>,
) -> anyhow::Result<String> {
    let now = shared.now().unix_timestamp();
    let mut claims = json!({
        "aud": app.client_id,
        "iss": format!("{}/{}/v2.0", shared.base_url, tenant),
        "iat": now, "nbf": now, "exp": now + 3600,
        "name": user.display_name,
        "preferred_username": user.upn,
        "rh": unique_token_id(),
        "sub": pairwise_sub(user.oid, app.client_id),
        "tid": tenant,
        "uti": unique_token_id(),
        "ver": "2.0",
    });
    if tenant == user.tenant {
        claims["oid"] = json!(user.oid);
    } else {
        claims["home_oid"] = json!(user.oid);
        claims["home_tid"] = json!(user.tenant);
        claims["idp"] = Value::from(format!("https://sts.windows.net/{}/", user.tenant));
    }
    if let Some(n) = nonce {
        claims["nonce"] = Value::from(n);
    }
    if shared.settings().id_token_amr {
        claims["amr"] = json!(amr);
    }
    shared.sign(&claims)
}

/// Why a bearer token was refused by a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProblem {
    Missing,
    Malformed,
    BadSignature,
    WrongAudience,
    WrongIssuer,
    Expired,
    NotYetValid,
}

impl TokenProblem {
    pub fn describe(&self) -> &'static str {
        match self {
            TokenProblem::Missing => "No bearer token in the Authorization header.",
            TokenProblem::Malformed => "The access token is malformed.",
            TokenProblem::BadSignature => "The access token signature is invalid.",
            TokenProblem::WrongAudience => "The access token audience is invalid.",
            TokenProblem::WrongIssuer => "The access token issuer is invalid.",
            TokenProblem::Expired => "The access token has expired.",
            TokenProblem::NotYetValid => "The access token is not yet valid.",
        }
    }
}

/// Validated claims of a bearer token.
#[derive(Debug, Clone)]
pub struct BearerClaims {
    pub claims: Value,
    pub tenant: Uuid,
}

impl BearerClaims {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// App+user token (has `scp`), as opposed to app-only.
    pub fn is_delegated(&self) -> bool {
        self.claims.get("scp").is_some()
    }

    pub fn has_mfa(&self) -> bool {
        self.claims
            .get("amr")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("mfa")))
    }

    pub fn oid(&self) -> Option<Uuid> {
        self.str("oid").and_then(|s| Uuid::parse_str(s).ok())
    }
}

/// Extracts the bearer token from an Authorization header value.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Validates signature (emulator keys), audience, issuer and lifetime (emulator clock).
pub fn validate_bearer(
    shared: &Shared,
    headers: &axum::http::HeaderMap,
    audiences: &[&str],
) -> Result<BearerClaims, TokenProblem> {
    let token = bearer(headers).ok_or(TokenProblem::Missing)?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenProblem::Malformed)?;
    let kid = header.kid.ok_or(TokenProblem::Malformed)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims: Value = {
        let keys = shared.keys();
        let key = keys.decoding(&kid).ok_or(TokenProblem::BadSignature)?;
        jsonwebtoken::decode::<Value>(token, key, &validation)
            .map_err(|_| TokenProblem::BadSignature)?
            .claims
    };
    let aud = claims
        .get("aud")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !audiences.iter().any(|a| a.eq_ignore_ascii_case(aud)) {
        return Err(TokenProblem::WrongAudience);
    }
    let tenant = claims
        .get("tid")
        .and_then(Value::as_str)
        .and_then(|t| Uuid::parse_str(t).ok())
        .ok_or(TokenProblem::Malformed)?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != format!("https://sts.windows.net/{tenant}/") {
        return Err(TokenProblem::WrongIssuer);
    }
    let now = shared.now().unix_timestamp();
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenProblem::Malformed)?;
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    // Microsoft resources allow a few minutes of clock skew.
    if now >= exp + 300 {
        return Err(TokenProblem::Expired);
    }
    if nbf > now + 300 {
        return Err(TokenProblem::NotYetValid);
    }
    Ok(BearerClaims { claims, tenant })
}
