//! `POST /{tenant}/oauth2/v2.0/token`: client authentication, `authorization_code`,
//! `refresh_token` (partner and customer tenants) and `client_credentials` (protocol page §1.3–1.6, §2, §6).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::assertion::{self, JWT_BEARER};
use super::customer_access;
use super::errors::{AadError, no_store};
use super::tokens::{
    self, ClientAuth, DelegatedToken, GRAPH, GRAPH_APP_ID, PARTNER_CENTER, PARTNER_CENTER_APP_ID,
    ResourceScopes,
};
use crate::faults;
use crate::seed::MfaState;
use crate::state::{App, AuthContext, Authority, RefreshGrant, Shared, User, World, random_token};

const CODE_LIFETIME: time::Duration = time::Duration::minutes(10);
const RT_INACTIVITY: time::Duration = time::Duration::days(90);

type Form = HashMap<String, String>;

/// Handles the token endpoint.
pub async fn issue_token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Form = url::form_urlencoded::parse(&body).into_owned().collect();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    shared.count_token(&tenant, &grant_type);
    if let Some(resp) = faults::apply_grant_type_fault(&shared, &grant_type).await {
        return resp;
    }
    let correlation = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match token(&shared, &tenant, &headers, &form) {
        Ok(body) => {
            let mut resp = axum::Json(body).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => e.response(&shared, correlation.as_deref()),
    }
}

/// AADSTS90002. UNCONFIRMED: `invalid_request` as recorded in 2021; newer discovery answers say
/// `invalid_tenant`.
fn tenant_not_found(segment: &str) -> AadError {
    AadError::invalid_request(
        90002,
        format!(
            "Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

fn unknown_app(client_id: &str, segment: &str) -> AadError {
    AadError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{segment}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

/// `Authorization: Basic base64(client_id:secret)` (RFC 6749 §2.3.1, form-urlencoded parts).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn token(
    shared: &Shared,
    segment: &str,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Value, AadError> {
    let now = shared.now();
    let mut world = shared.world();
    let authority = world
        .authority(segment)
        .ok_or_else(|| tenant_not_found(segment))?;
    if form.contains_key("resource") {
        return Err(AadError::invalid_request(
            901002,
            "The 'resource' request parameter is not supported.",
        ));
    }
    let grant_type = form
        .get("grant_type")
        .filter(|g| !g.is_empty())
        .ok_or_else(|| AadError::missing_parameter("grant_type"))?
        .clone();
    let basic = basic_credentials(headers);
    let client_id_raw = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .ok_or_else(|| AadError::missing_parameter("client_id"))?;
    let client_id =
        Uuid::parse_str(&client_id_raw).map_err(|_| unknown_app(&client_id_raw, segment))?;
    let app = world
        .apps
        .get(&client_id)
        .cloned()
        .ok_or_else(|| unknown_app(&client_id_raw, segment))?;
    let client_auth = authenticate_client(shared, &app, segment, &authority, form, basic, now)?;
    match grant_type.as_str() {
        "authorization_code" => redeem_code(
            shared,
            &mut world,
            &app,
            segment,
            &authority,
            form,
            client_auth,
        ),
        "refresh_token" => {
            redeem_refresh_token(shared, &mut world, &app, &authority, form, client_auth)
        }
        "client_credentials" => {
            client_credentials(shared, &world, &app, &authority, form, client_auth)
        }
        other => Err(AadError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn authenticate_client(
    shared: &Shared,
    app: &App,
    segment: &str,
    authority: &Authority,
    form: &Form,
    basic: Option<(String, String)>,
    now: time::OffsetDateTime,
) -> Result<ClientAuth, AadError> {
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(AadError::invalid_request(
                50027,
                "Invalid client_assertion_type; expected 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            ));
        }
        let base = &shared.base_url;
        let mut audiences = vec![
            format!("{base}/{segment}/oauth2/v2.0/token"),
            format!("{base}/{segment}/oauth2/token"),
        ];
        if let Authority::Tenant(t) = authority {
            audiences.push(format!("{base}/{t}/oauth2/v2.0/token"));
            audiences.push(format!("{base}/{t}/oauth2/token"));
        }
        assertion::verify(app, assertion, &audiences, now.unix_timestamp())?;
        return Ok(ClientAuth::Certificate);
    }
    let secret = form.get("client_secret").cloned().or(basic.map(|(_, s)| s));
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(AadError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    let matching: Vec<_> = app.secrets.iter().filter(|s| s.value == secret).collect();
    if matching
        .iter()
        .any(|s| s.expires_at.is_none_or(|e| e > now))
    {
        return Ok(ClientAuth::Secret);
    }
    if !matching.is_empty() {
        return Err(AadError::invalid_client(
            7000222,
            format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                app.client_id
            ),
        ));
    }
    Err(AadError::invalid_client(
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
            app.client_id
        ),
    ))
}

/// S256 or plain PKCE check.
fn pkce_ok(challenge: &str, method: &str, verifier: &str) -> bool {
    if method.eq_ignore_ascii_case("S256") {
        let digest = Sha256::digest(verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
    } else {
        verifier == challenge
    }
}

fn redeem_code(
    shared: &Shared,
    world: &mut World,
    app: &App,
    segment: &str,
    authority: &Authority,
    form: &Form,
    client_auth: ClientAuth,
) -> Result<Value, AadError> {
    let now = shared.now();
    let code_value = form
        .get("code")
        .ok_or_else(|| AadError::missing_parameter("code"))?;
    let code = world.codes.get(code_value).cloned().ok_or_else(|| {
        AadError::invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
    })?;
    if code.redeemed {
        return Err(AadError::invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    if now - code.issued_at > CODE_LIFETIME {
        return Err(AadError::invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if code.client_id != app.client_id {
        return Err(AadError::invalid_grant(
            70000,
            "Provided grant is invalid or malformed.",
        ));
    }
    let strict = shared.settings().strict_code_tenant;
    let tenant_ok = match authority {
        Authority::Tenant(t) => *t == code.tenant,
        Authority::Organizations | Authority::Common => {
            !strict && code.authority.eq_ignore_ascii_case(segment)
        }
    };
    if !tenant_ok {
        return Err(AadError::invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        ));
    }
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or_else(|| AadError::missing_parameter("redirect_uri"))?;
    if *redirect_uri != code.redirect_uri {
        return Err(AadError::invalid_grant(
            500112,
            format!(
                "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                code.redirect_uri
            ),
        ));
    }
    if let Some((challenge, method)) = &code.code_challenge {
        let verifier = form
            .get("code_verifier")
            .map(String::as_str)
            .unwrap_or_default();
        if !pkce_ok(challenge, method, verifier) {
            return Err(AadError::invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
    }
    let user =
        world.users.get(&code.auth.user).cloned().ok_or_else(|| {
            AadError::invalid_grant(70000, "Provided grant is invalid or malformed.")
        })?;
    if user.disabled {
        return Err(disabled());
    }
    if let Some(c) = world.codes.get_mut(code_value) {
        c.redeemed = true;
    }
    let requested = match form.get("scope") {
        Some(s) if !s.trim().is_empty() => tokens::parse_scopes(s),
        _ => code.scopes.clone(),
    };
    let want_id_token = code.scopes.iter().any(|s| s == "openid");
    issue_user_tokens(
        shared,
        world,
        UserGrant {
            app,
            user: &user,
            tenant: code.tenant,
            auth: &code.auth,
            grant_scopes: &code.scopes,
            requested: &requested,
            nonce: code.nonce.as_deref(),
            want_id_token,
            client_auth,
            client_info: form.get("client_info").map(String::as_str) == Some("1"),
        },
    )
}

fn disabled() -> AadError {
    AadError::invalid_grant(
        50057,
        "The user account is disabled. The user object in Active Directory backing this account has been disabled. An admin can re-enable this account through PowerShell",
    )
}

fn resource_app_id(resource: &str) -> &str {
    if resource.eq_ignore_ascii_case(PARTNER_CENTER) {
        PARTNER_CENTER_APP_ID
    } else if resource.eq_ignore_ascii_case(GRAPH) {
        GRAPH_APP_ID
    } else {
        resource
    }
}

fn redeem_refresh_token(
    shared: &Shared,
    world: &mut World,
    app: &App,
    authority: &Authority,
    form: &Form,
    client_auth: ClientAuth,
) -> Result<Value, AadError> {
    let now = shared.now();
    let rt = form
        .get("refresh_token")
        .ok_or_else(|| AadError::missing_parameter("refresh_token"))?;
    let Some(grant) = world.refresh_tokens.get(rt).cloned() else {
        return Err(if rt.starts_with("0.A") && rt.len() > 40 {
            AadError::invalid_grant(70000, "Provided grant is invalid or malformed.")
        } else {
            malformed_grant()
        });
    };
    if grant.client_id != app.client_id {
        return Err(AadError::invalid_grant(
            700007,
            "Provided grant was issued for a different client id.",
        ));
    }
    if now - grant.issued_at > RT_INACTIVITY {
        return Err(AadError::invalid_grant(
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for 90.00:00:00.",
                grant
                    .issued_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        ));
    }
    let user =
        world.users.get(&grant.auth.user).cloned().ok_or_else(|| {
            AadError::invalid_grant(70000, "Provided grant is invalid or malformed.")
        })?;
    if user.disabled {
        return Err(disabled());
    }
    if user
        .revoked_before
        .is_some_and(|r| grant.auth.auth_time <= r)
    {
        return Err(AadError::invalid_grant(
            50173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                super::errors::timestamp(grant.auth.auth_time),
                user.revoked_before
                    .map(super::errors::timestamp)
                    .unwrap_or_default()
            ),
        ));
    }
    let requested = match form.get("scope") {
        Some(s) if !s.trim().is_empty() => tokens::parse_scopes(s),
        _ => grant.scopes.clone(),
    };
    let rs = tokens::resource_scopes(&requested);
    let needs_new_mfa = user
        .mfa_required_after
        .is_some_and(|r| grant.auth.auth_time <= r);
    let resource = resource_app_id(&rs.resource);
    if needs_new_mfa || (user.mfa != MfaState::NotRequired && !grant.auth.has_mfa()) {
        if user.mfa == MfaState::NotRegistered {
            // At the v2 token endpoint a refresh needing MFA enrolment is `invalid_grant` with
            // `suberror: basic_action`, like 50076 (interaction_required is the authorize
            // endpoint's answer): MSAL Python's and .NET's handling of `basic_action`,
            // microsoft-protocols.md §2.4.
            return Err(AadError::invalid_grant(
                50079,
                format!(
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '{resource}'."
                ),
            )
            .with_suberror("basic_action"));
        }
        return Err(customer_access::mfa_required(resource));
    }
    let tenant = match authority {
        Authority::Tenant(t) if *t != user.tenant => {
            let customer = world
                .tenants
                .get(t)
                .ok_or_else(|| tenant_not_found(&t.to_string()))?;
            customer_access::check(world, app, &user, customer, resource, now)?;
            customer.id
        }
        _ => {
            if app.home_tenant != user.tenant && !world.consented(user.tenant, app.client_id) {
                return Err(customer_access::consent_required(app));
            }
            user.tenant
        }
    };
    let want_id_token = requested.iter().any(|s| s == "openid")
        || (form.get("scope").is_none() && grant.scopes.iter().any(|s| s == "openid"));
    issue_user_tokens(
        shared,
        world,
        UserGrant {
            app,
            user: &user,
            tenant,
            auth: &grant.auth,
            grant_scopes: &grant.scopes,
            requested: &requested,
            nonce: None,
            want_id_token,
            client_auth,
            client_info: form.get("client_info").map(String::as_str) == Some("1"),
        },
    )
}

struct UserGrant<'a> {
    app: &'a App,
    user: &'a User,
    tenant: Uuid,
    auth: &'a AuthContext,
    grant_scopes: &'a [String],
    requested: &'a [String],
    nonce: Option<&'a str>,
    want_id_token: bool,
    client_auth: ClientAuth,
    client_info: bool,
}

/// Delegated permissions (`scp`) a token for `rs` carries in `tenant`.
fn delegated_scp(world: &World, tenant: Uuid, client_id: Uuid, rs: &ResourceScopes) -> Vec<String> {
    if rs.resource.eq_ignore_ascii_case(PARTNER_CENTER) {
        return vec!["user_impersonation".to_owned()];
    }
    if !rs.is_default() {
        return rs.names.clone();
    }
    let enterprise_id = resource_app_id(&rs.resource).to_owned();
    let from_consent: Vec<String> = world
        .consents
        .get(&(tenant, client_id))
        .map(|c| {
            c.grants
                .iter()
                .filter(|g| {
                    g.get("enterpriseApplicationId")
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.eq_ignore_ascii_case(&enterprise_id))
                })
                .filter_map(|g| g.get("scope").and_then(Value::as_str))
                .flat_map(|s| s.split(',').map(|x| x.trim().to_owned()))
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !from_consent.is_empty() {
        return from_consent;
    }
    if rs.resource.eq_ignore_ascii_case(GRAPH) {
        vec![
            "User.Read".to_owned(),
            "Directory.Read.All".to_owned(),
            "DelegatedAdminRelationship.Read.All".to_owned(),
        ]
    } else {
        vec!["user_impersonation".to_owned()]
    }
}

fn issue_user_tokens(
    shared: &Shared,
    world: &mut World,
    g: UserGrant<'_>,
) -> Result<Value, AadError> {
    let server_error = |e: anyhow::Error| {
        AadError::new("server_error", 90033, format!("Token signing failed: {e}")).with_status(500)
    };
    let rs = tokens::resource_scopes(g.requested);
    let scp = delegated_scp(world, g.tenant, g.app.client_id, &rs);
    let lifetime = tokens::access_token_lifetime(shared);
    let access_token = tokens::delegated_access_token(
        shared,
        &DelegatedToken {
            app: g.app,
            user: g.user,
            tenant: g.tenant,
            amr: &g.auth.amr,
            auth_time: g.auth.auth_time,
            scopes: &rs,
            scp: scp.clone(),
            client_auth: g.client_auth,
            lifetime,
        },
    )
    .map_err(server_error)?;
    let scope = scp
        .iter()
        .map(|n| format!("{}/{n}", rs.resource))
        .collect::<Vec<_>>()
        .join(" ");
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    if g.grant_scopes.iter().any(|s| s == "offline_access") {
        let rt = format!("0.A{}", random_token(96));
        world.refresh_tokens.insert(
            rt.clone(),
            RefreshGrant {
                client_id: g.app.client_id,
                scopes: g.grant_scopes.to_vec(),
                auth: g.auth.clone(),
                issued_at: shared.now(),
            },
        );
        world.issued_refresh_tokens.push(rt.clone());
        body["refresh_token"] = Value::from(rt);
    }
    if g.client_info {
        // MSAL sends client_info=1 and keys its cache by uid.utid.
        let info = json!({ "uid": g.user.oid, "utid": g.user.tenant }).to_string();
        body["client_info"] =
            Value::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(info));
    }
    if g.want_id_token {
        let id = tokens::id_token(shared, g.app, g.user, g.tenant, &g.auth.amr, g.nonce)
            .map_err(server_error)?;
        body["id_token"] = Value::from(id);
    }
    Ok(body)
}

fn client_credentials(
    shared: &Shared,
    world: &World,
    app: &App,
    authority: &Authority,
    form: &Form,
    client_auth: ClientAuth,
) -> Result<Value, AadError> {
    let scope = form
        .get("scope")
        .ok_or_else(|| AadError::missing_parameter("scope"))?;
    let rs = tokens::resource_scopes(&tokens::parse_scopes(scope));
    if !rs.is_default() || rs.names.len() != 1 {
        return Err(AadError::new(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let tenant = match authority {
        Authority::Tenant(t) => *t,
        _ => {
            return Err(AadError::invalid_request(
                9001023,
                "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
            ));
        }
    };
    if tenant != app.home_tenant && !world.consented(tenant, app.client_id) {
        return Err(AadError::invalid_client(
            7000229,
            format!(
                "The client application {} is missing service principal in the tenant {tenant}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
                app.client_id
            ),
        ));
    }
    let lifetime = tokens::access_token_lifetime(shared);
    let access_token =
        tokens::app_access_token(shared, app, tenant, &rs.resource, client_auth, lifetime)
            .map_err(|e| {
                AadError::new("server_error", 90033, format!("Token signing failed: {e}"))
                    .with_status(500)
            })?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }))
}

/// AADSTS9002313 for a refresh token that is not one at all: `invalid_grant` with
/// `suberror: bad_token` (the body MSAL .NET's tests record for a garbage refresh token).
fn malformed_grant() -> AadError {
    AadError::invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        .with_suberror("bad_token")
}
