//! `GET /{tenant}/oauth2/v2.0/authorize` and the pages behind it (sign-in, MFA, consent).
//! The transaction lives server-side under a random `ctx`; each POST checks the stage so no step
//! can be skipped. Unregistered redirect URIs get an error page, never a redirect (§1.2).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use uuid::Uuid;

use super::errors::{AadError, timestamp};
use super::pages::{self, SignInErrors};
use super::tokens::parse_scopes;
use crate::seed::MfaState;
use crate::state::{
    AuthCode, AuthContext, Authority, ConsentRecord, LoginTxn, Shared, SsoSession, Stage, World,
    random_token,
};

const SSO_COOKIE: &str = "ESTSAUTH";
const TXN_LIFETIME: time::Duration = time::Duration::hours(1);

fn error_page(shared: &Shared, err: &AadError) -> Response {
    pages::error(
        &err.headline(),
        &Uuid::new_v4().to_string(),
        &Uuid::new_v4().to_string(),
        &timestamp(shared.now()),
    )
}

/// Where the result of a transaction goes.
struct Reply<'a> {
    redirect_uri: &'a str,
    response_mode: &'a str,
    state: Option<&'a str>,
}

fn reply(r: &Reply<'_>, mut fields: Vec<(&'static str, String)>) -> Response {
    if let Some(s) = r.state {
        fields.push(("state", s.to_owned()));
    }
    if r.response_mode == "form_post" {
        return pages::form_post(r.redirect_uri, &fields);
    }
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let location = if r.response_mode == "fragment" {
        format!("{}#{encoded}", r.redirect_uri)
    } else if r.redirect_uri.contains('?') {
        format!("{}&{encoded}", r.redirect_uri)
    } else {
        format!("{}?{encoded}", r.redirect_uri)
    };
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn error_reply(shared: &Shared, r: &Reply<'_>, err: &AadError) -> Response {
    let now = timestamp(shared.now());
    let description = format!(
        "{}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {now}",
        err.headline(),
        Uuid::new_v4(),
        Uuid::new_v4()
    );
    reply(
        r,
        vec![
            ("error", err.error.to_owned()),
            ("error_description", description),
            (
                "error_uri",
                format!("{}?code={}", super::errors::ERROR_PAGE, err.code),
            ),
        ],
    )
}

fn txn_reply(txn: &LoginTxn) -> Reply<'_> {
    Reply {
        redirect_uri: &txn.redirect_uri,
        response_mode: &txn.response_mode,
        state: txn.state.as_deref(),
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SSO_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The SSO session, if still valid for this authority.
fn current_session(
    world: &World,
    headers: &HeaderMap,
    authority: &Authority,
) -> Option<SsoSession> {
    let session = world.sessions.get(&session_id(headers)?)?.clone();
    let user = world.users.get(&session.auth.user)?;
    let revoked = user
        .revoked_before
        .is_some_and(|r| session.auth.auth_time <= r);
    let tenant_ok = match authority {
        Authority::Tenant(t) => *t == user.tenant,
        _ => true,
    };
    (!user.disabled && !revoked && tenant_ok).then_some(session)
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub async fn start_authorize(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let now = shared.now();
    let mut world = shared.world();
    let Some(authority) = world.authority(&segment) else {
        let err = AadError::invalid_request(
            90002,
            format!(
                "Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
        return error_page(&shared, &err);
    };
    let Some(client_raw) = q.get("client_id") else {
        return error_page(&shared, &AadError::missing_parameter("client_id"));
    };
    let app = Uuid::parse_str(client_raw)
        .ok()
        .and_then(|id| world.apps.get(&id).cloned());
    let Some(app) = app else {
        let err = AadError::new(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_raw}' was not found in the directory '{segment}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
        return error_page(&shared, &err);
    };
    if !app.multitenant && authority != Authority::Tenant(app.home_tenant) {
        let err = AadError::invalid_request(
            50194,
            format!(
                "Application '{}'({}) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.",
                app.client_id, app.display_name
            ),
        );
        return error_page(&shared, &err);
    }
    let redirect_uri = match q.get("redirect_uri") {
        Some(r) => r.clone(),
        None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
        None => return error_page(&shared, &AadError::missing_parameter("redirect_uri")),
    };
    if !app.redirect_uris.contains(&redirect_uri) {
        let err = AadError::invalid_request(
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
                app.client_id
            ),
        );
        return error_page(&shared, &err);
    }
    let response_mode = q
        .get("response_mode")
        .cloned()
        .unwrap_or_else(|| "query".to_owned());
    let state = q.get("state").cloned();
    let early = Reply {
        redirect_uri: &redirect_uri,
        response_mode: if matches!(response_mode.as_str(), "query" | "fragment" | "form_post") {
            &response_mode
        } else {
            "query"
        },
        state: state.as_deref(),
    };
    if !matches!(response_mode.as_str(), "query" | "fragment" | "form_post") {
        let err = AadError::invalid_request(
            900144,
            format!("The response_mode '{response_mode}' is not supported."),
        );
        return error_reply(&shared, &early, &err);
    }
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => {
            return error_reply(
                &shared,
                &early,
                &AadError::missing_parameter("response_type"),
            );
        }
        Some(other) => {
            let err = AadError::new(
                "unsupported_response_type",
                700054,
                format!("response_type '{other}' is not enabled for the application."),
            );
            return error_reply(&shared, &early, &err);
        }
    }
    let scopes = parse_scopes(q.get("scope").map(String::as_str).unwrap_or_default());
    if scopes.is_empty() {
        let err = AadError::invalid_request(
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
        return error_reply(&shared, &early, &err);
    }
    let resource_scopes: Vec<&String> = scopes
        .iter()
        .filter(|s| !super::tokens::OIDC_SCOPES.contains(&s.as_str()))
        .collect();
    if resource_scopes.iter().any(|s| s.ends_with("/.default")) && resource_scopes.len() > 1 {
        let err = AadError::new(
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid. The scope .default cannot be combined with other resource scopes.",
        );
        return error_reply(&shared, &early, &err);
    }
    let code_challenge = match (q.get("code_challenge"), q.get("code_challenge_method")) {
        (None, None) => None,
        (Some(c), m) => {
            let method = m.cloned().unwrap_or_else(|| "plain".to_owned());
            if !matches!(method.as_str(), "S256" | "plain") {
                let err = AadError::invalid_request(
                    501491,
                    format!("Invalid code_challenge_method '{method}'."),
                );
                return error_reply(&shared, &early, &err);
            }
            if !(43..=128).contains(&c.len()) {
                let err =
                    AadError::invalid_request(501491, "Invalid size of Code_Challenge parameter.");
                return error_reply(&shared, &early, &err);
            }
            Some((c.clone(), method))
        }
        (None, Some(_)) => {
            let err = AadError::invalid_request(
                501491,
                "code_challenge_method was sent without code_challenge.",
            );
            return error_reply(&shared, &early, &err);
        }
    };
    let prompt = q.get("prompt").cloned();
    if let Some(p) = &prompt
        && !matches!(p.as_str(), "login" | "consent" | "select_account" | "none")
    {
        let err = AadError::invalid_request(90023, format!("Unsupported 'prompt' value '{p}'."));
        return error_reply(&shared, &early, &err);
    }
    let txn = LoginTxn {
        authority: segment.to_ascii_lowercase(),
        client_id: app.client_id,
        redirect_uri: redirect_uri.clone(),
        response_mode: response_mode.clone(),
        scopes,
        state: state.clone(),
        nonce: q.get("nonce").cloned(),
        code_challenge,
        login_hint: q.get("login_hint").cloned(),
        prompt: prompt.clone(),
        stage: Stage::SignIn,
        user: None,
        amr: Vec::new(),
        created: now,
    };
    let session = current_session(&world, &headers, &authority);
    let ctx = random_token(32);
    world
        .transactions
        .retain(|_, t| now - t.created < TXN_LIFETIME);
    world.transactions.insert(ctx.clone(), txn);
    match (prompt.as_deref(), session) {
        (Some("none"), None) => {
            world.transactions.remove(&ctx);
            let err = AadError::new(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            );
            error_reply(&shared, &early, &err)
        }
        (Some("none"), Some(s)) => {
            let verdict = after_authentication(
                &shared,
                &mut world,
                &ctx,
                s.auth.user,
                s.auth.amr.clone(),
                &segment,
            );
            match verdict {
                Next::Page(_) => {
                    world.transactions.remove(&ctx);
                    let err = AadError::new(
                        "interaction_required",
                        65001,
                        "The user or administrator has not consented to use the application, or multi-factor authentication is required. Send an interactive authorization request.",
                    );
                    error_reply(&shared, &early, &err)
                }
                Next::Done(resp) => resp,
            }
        }
        (Some("login"), _) | (_, None) => {
            let hint = q.get("login_hint").cloned().unwrap_or_default();
            pages::sign_in(
                &segment,
                &ctx,
                &hint,
                &app.display_name,
                SignInErrors::default(),
            )
        }
        (Some("select_account"), Some(s)) => {
            let upn = world
                .users
                .get(&s.auth.user)
                .map(|u| u.upn.clone())
                .unwrap_or_default();
            pages::pick_account(&segment, &ctx, &upn)
        }
        (_, Some(s)) => after_authentication(
            &shared,
            &mut world,
            &ctx,
            s.auth.user,
            s.auth.amr.clone(),
            &segment,
        )
        .into_response(),
    }
}

/// Outcome of a step: another page, or the final redirect.
enum Next {
    Page(Response),
    Done(Response),
}

impl Next {
    fn into_response(self) -> Response {
        match self {
            Next::Page(r) | Next::Done(r) => r,
        }
    }
}

/// After the password (or SSO): MFA if needed, then consent if needed, then the code.
fn after_authentication(
    shared: &Shared,
    world: &mut World,
    ctx: &str,
    user: Uuid,
    amr: Vec<String>,
    segment: &str,
) -> Next {
    let Some(u) = world.users.get(&user).cloned() else {
        return Next::Page(error_page(
            shared,
            &AadError::invalid_request(50034, "The user account does not exist."),
        ));
    };
    let Some(txn) = world.transactions.get_mut(ctx) else {
        return Next::Page(expired_page(shared));
    };
    txn.user = Some(user);
    txn.amr = amr;
    let has_mfa = txn.amr.iter().any(|a| a == "mfa");
    // require_new_mfa drops SSO sessions, so an `mfa` still present here is newer than the policy.
    if u.mfa != MfaState::NotRequired && !has_mfa {
        if u.mfa == MfaState::NotRegistered {
            txn.stage = Stage::MfaRegistration;
            return Next::Page(pages::mfa_registration_required(segment, ctx, &u.upn));
        }
        txn.stage = Stage::Mfa;
        return Next::Page(pages::mfa(segment, ctx, &u.upn, &u.mfa_code, None));
    }
    after_mfa(shared, world, ctx, segment)
}

fn after_mfa(shared: &Shared, world: &mut World, ctx: &str, segment: &str) -> Next {
    let Some(txn) = world.transactions.get(ctx).cloned() else {
        return Next::Page(expired_page(shared));
    };
    let Some(user) = txn.user.and_then(|u| world.users.get(&u).cloned()) else {
        return Next::Page(expired_page(shared));
    };
    let app_home = world.apps.get(&txn.client_id).map(|a| a.home_tenant);
    let consented = world.consented(user.tenant, txn.client_id) || app_home == Some(user.tenant);
    if txn.prompt.as_deref() == Some("consent") || !consented {
        if txn.prompt.as_deref() == Some("none") {
            return Next::Page(StatusCode::OK.into_response());
        }
        if let Some(t) = world.transactions.get_mut(ctx) {
            t.stage = Stage::Consent;
        }
        let app_name = world
            .apps
            .get(&txn.client_id)
            .map(|a| a.display_name.clone())
            .unwrap_or_default();
        return Next::Page(pages::consent(
            segment,
            ctx,
            &user.upn,
            &app_name,
            &txn.scopes,
        ));
    }
    Next::Done(finish(shared, world, ctx))
}

/// Issues the code, sets the SSO cookie and redirects.
fn finish(shared: &Shared, world: &mut World, ctx: &str) -> Response {
    let now = shared.now();
    let Some(txn) = world.transactions.remove(ctx) else {
        return expired_page(shared);
    };
    let Some(user) = txn.user.and_then(|u| world.users.get(&u).cloned()) else {
        return expired_page(shared);
    };
    let auth = AuthContext {
        user: user.oid,
        amr: txn.amr.clone(),
        auth_time: now,
    };
    let code = format!("1.A{}", random_token(64));
    world.codes.insert(
        code.clone(),
        AuthCode {
            client_id: txn.client_id,
            redirect_uri: txn.redirect_uri.clone(),
            scopes: txn.scopes.clone(),
            code_challenge: txn.code_challenge.clone(),
            nonce: txn.nonce.clone(),
            authority: txn.authority.clone(),
            tenant: user.tenant,
            auth: auth.clone(),
            issued_at: now,
            redeemed: false,
        },
    );
    let sid = random_token(32);
    world.sessions.insert(sid.clone(), SsoSession { auth });
    let mut resp = reply(
        &txn_reply(&txn),
        vec![
            ("code", code),
            ("session_state", Uuid::new_v4().to_string()),
        ],
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SSO_COOKIE}={sid}; path=/; HttpOnly; SameSite=Lax"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn expired_page(shared: &Shared) -> Response {
    error_page(
        shared,
        &AadError::invalid_request(
            50089,
            "Flow token expired - Authentication Failed. Have the user try signing-in again.",
        ),
    )
}

/// Looks up a transaction and checks it is at `stage`.
fn txn_at(world: &World, ctx: &str, stage: Stage, now: OffsetDateTime) -> Option<LoginTxn> {
    world
        .transactions
        .get(ctx)
        .filter(|t| t.stage == stage && now - t.created < TXN_LIFETIME)
        .cloned()
}

/// `POST /{tenant}/login`: the sign-in form (or the account picker).
pub async fn submit_credentials(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = shared.now();
    let mut world = shared.world();
    let ctx = form.get("ctx").cloned().unwrap_or_default();
    let Some(txn) = txn_at(&world, &ctx, Stage::SignIn, now) else {
        return expired_page(&shared);
    };
    let app_name = world
        .apps
        .get(&txn.client_id)
        .map(|a| a.display_name.clone())
        .unwrap_or_default();
    let authority = world
        .authority(&txn.authority)
        .unwrap_or(Authority::Organizations);
    match form.get("action").map(String::as_str) {
        Some("continue") => {
            return match current_session(&world, &headers, &authority) {
                Some(s) => after_authentication(
                    &shared,
                    &mut world,
                    &ctx,
                    s.auth.user,
                    s.auth.amr,
                    &segment,
                )
                .into_response(),
                None => pages::sign_in(&segment, &ctx, "", &app_name, SignInErrors::default()),
            };
        }
        Some("other") => {
            return pages::sign_in(&segment, &ctx, "", &app_name, SignInErrors::default());
        }
        _ => {}
    }
    let login = form.get("login").cloned().unwrap_or_default();
    let password = form.get("passwd").cloned().unwrap_or_default();
    let page = |errors: SignInErrors<'_>| pages::sign_in(&segment, &ctx, &login, &app_name, errors);
    let Some(user) = world.user_by_upn(&login).cloned() else {
        let msg = format!(
            "We couldn't find an account with that username. AADSTS50034: The user account {login} does not exist in the directory."
        );
        return page(SignInErrors {
            username: Some(&msg),
            password: None,
        });
    };
    if let Authority::Tenant(t) = authority
        && t != user.tenant
    {
        let msg = format!(
            "AADSTS50020: User account '{}' from identity provider 'https://sts.windows.net/{}/' does not exist in tenant '{t}' and cannot access the application in that tenant.",
            user.upn, user.tenant
        );
        return page(SignInErrors {
            username: Some(&msg),
            password: None,
        });
    }
    if user.password != password {
        let msg = "Your account or password is incorrect. AADSTS50126: Error validating credentials due to invalid username or password.";
        return page(SignInErrors {
            username: None,
            password: Some(msg),
        });
    }
    if user.disabled {
        let msg = "Your account has been locked. AADSTS50057: The user account is disabled.";
        return page(SignInErrors {
            username: Some(msg),
            password: None,
        });
    }
    after_authentication(
        &shared,
        &mut world,
        &ctx,
        user.oid,
        vec!["pwd".to_owned()],
        &segment,
    )
    .into_response()
}

/// `POST /{tenant}/SAS/ProcessAuth`: the MFA code, or Back from "More information required".
pub async fn submit_mfa(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = shared.now();
    let mut world = shared.world();
    let ctx = form.get("ctx").cloned().unwrap_or_default();
    if form.get("action").map(String::as_str) == Some("back") {
        let Some(txn) = txn_at(&world, &ctx, Stage::MfaRegistration, now) else {
            return expired_page(&shared);
        };
        world.transactions.remove(&ctx);
        let resource = "00000003-0000-0000-c000-000000000000";
        let err = AadError::new(
            "interaction_required",
            50079,
            format!(
                "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '{resource}'."
            ),
        );
        return error_reply(&shared, &txn_reply(&txn), &err);
    }
    let Some(txn) = txn_at(&world, &ctx, Stage::Mfa, now) else {
        return expired_page(&shared);
    };
    let Some(user) = txn.user.and_then(|u| world.users.get(&u).cloned()) else {
        return expired_page(&shared);
    };
    let otc = form
        .get("otc")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    if otc != user.mfa_code {
        let msg = "You didn't enter the expected verification code. Please try again.";
        return pages::mfa(&segment, &ctx, &user.upn, &user.mfa_code, Some(msg));
    }
    let mut amr = txn.amr.clone();
    amr.push("mfa".to_owned());
    if let Some(t) = world.transactions.get_mut(&ctx) {
        t.amr = amr;
        t.stage = Stage::Consent;
    }
    after_mfa(&shared, &mut world, &ctx, &segment).into_response()
}

/// `POST /{tenant}/Consent/Set`: Accept or Cancel.
pub async fn submit_consent(
    State(shared): State<Arc<Shared>>,
    Path(_segment): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = shared.now();
    let mut world = shared.world();
    let ctx = form.get("ctx").cloned().unwrap_or_default();
    let Some(txn) = txn_at(&world, &ctx, Stage::Consent, now) else {
        return expired_page(&shared);
    };
    if form.get("decision").map(String::as_str) != Some("accept") {
        world.transactions.remove(&ctx);
        let err = AadError::new(
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
        return error_reply(&shared, &txn_reply(&txn), &err);
    }
    let Some(user) = txn.user.and_then(|u| world.users.get(&u).cloned()) else {
        return expired_page(&shared);
    };
    let grants: Vec<serde_json::Value> = txn
        .scopes
        .iter()
        .map(|s| serde_json::json!({ "scope": s }))
        .collect();
    world
        .consents
        .entry((user.tenant, txn.client_id))
        .or_insert(ConsentRecord {
            display_name: None,
            grants,
        });
    finish(&shared, &mut world, &ctx)
}

/// `GET /error?code=n`: the page `error_uri` points to.
pub async fn show_error_code(Query(q): Query<HashMap<String, String>>) -> Response {
    let code = q.get("code").cloned().unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html><html><head><title>AADSTS{0}</title></head><body><h1>Error AADSTS{0}</h1>\
<p>See the Microsoft Entra error code reference for AADSTS{0}. (Emulator page.)</p></body></html>",
        pages::esc(&code)
    );
    axum::response::Html(body).into_response()
}
