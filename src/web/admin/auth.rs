//! Staff sessions: sign-in and out (password, then a second step when the account has or needs a
//! second factor; or Microsoft with MFA), the `CurrentStaff` extractor (session → live staff row,
//! epoch and timeouts checked on every request), the `PendingSignIn` extractor of a half-signed-in
//! session (which grants nothing else), role enforcement, the synchronizer CSRF token with an
//! origin check, and `ReturnPath`, the only place a post-login redirect target comes from.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use askama::Template;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::view::PageFrame;
use crate::app::AppState;
use crate::db;
use crate::domain::Actor;
use crate::identity::{
    AuthCodeFlow, BeginRequest, Callback, CompletedFlow, FlowError, FlowScopes, Prompt, Redemption,
    access_token_amr,
};
use crate::staff::mfa::SecondStep;
use crate::staff::{NextStep, Role, SignIn, StaffEmail, StaffError};
use crate::web::errors::{PageError, render};

/// Sessions end after this long without a request (also the cookie store's inactivity expiry).
pub const IDLE_TIMEOUT: time::Duration = time::Duration::minutes(30);
/// Sessions end this long after sign-in, however active.
pub const ABSOLUTE_TIMEOUT: time::Duration = time::Duration::hours(8);
/// `last_seen_at` is written at most this often (each write is a session-store update).
const TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);

/// A session whose password was right waits at most this long for its code.
pub const SECOND_STEP_TIMEOUT: time::Duration = time::Duration::minutes(5);
/// A session that must set up a second factor first gets this long (installing an app takes a
/// while); it grants nothing but the set-up pages meanwhile.
pub const ENROLMENT_TIMEOUT: time::Duration = time::Duration::minutes(10);

const CSRF_KEY: &str = "admin.csrf";
const SIGNED_IN_KEY: &str = "admin.signed_in";
const SECOND_STEP_KEY: &str = "admin.second_step";
const CSRF_FIELD: &str = "csrf";
/// The one message for every refused sign-in: it says nothing about whether the account exists.
pub const SIGN_IN_REFUSED: &str =
    "Email or password is incorrect, or sign-in is temporarily blocked.";
/// The one message for every refused second step.
pub const SECOND_STEP_REFUSED: &str = "The code is not right or was used already, or sign-in is \
     temporarily blocked. Type the current code from your authenticator app, or a recovery code.";
/// The answer when every password check slot stayed busy (503).
pub const SIGN_IN_BUSY: &str =
    "samgate is checking many sign-ins right now. Wait a few seconds and try again.";

/// What the session remembers about a signed-in staff member.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedIn {
    staff_id: Uuid,
    epoch: i32,
    signed_in_at: i64,
    last_seen_at: i64,
}

/// What a session remembers between a right password and its second step. It is kept apart from
/// [`SignedIn`], which `CurrentStaff` alone reads: a half-signed-in session reaches no admin page.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HalfSignedIn {
    staff_id: Uuid,
    epoch: i32,
    started_at: i64,
    return_to: String,
    awaiting: Awaiting,
}

/// What a half-signed-in session still has to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaiting {
    /// Type a TOTP code or a recovery code.
    Code,
    /// Set up a second factor (admins without one).
    Enrolment,
}

impl Awaiting {
    fn timeout(self) -> time::Duration {
        match self {
            Self::Code => SECOND_STEP_TIMEOUT,
            Self::Enrolment => ENROLMENT_TIMEOUT,
        }
    }

    fn page(self) -> &'static str {
        match self {
            Self::Code => "/admin/login/verify",
            Self::Enrolment => "/admin/login/enrol",
        }
    }
}

/// The session's CSRF token (put in every form; never logged).
#[derive(Clone)]
pub struct CsrfToken(String);

impl CsrfToken {
    fn generate() -> Self {
        use base64::Engine;
        use rand::RngExt;
        let bytes: [u8; 32] = rand::rng().random();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value for the hidden form field.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn matches(&self, submitted: &str) -> bool {
        self.0.as_bytes().ct_eq(submitted.as_bytes()).into()
    }
}

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken([redacted])")
    }
}

/// The sign-in form's CSRF token lives in a cookie of its own (double submit), not in a session:
/// showing the form to an anonymous visitor stores nothing on the server.
fn login_cookie_name(state: &AppState) -> &'static str {
    if state.config.public_url.scheme() == "https" {
        "__Host-samgate_login_csrf"
    } else {
        "samgate_login_csrf"
    }
}

/// The sign-in form's token from its cookie, if the browser sent a well-formed one.
fn login_csrf_cookie(state: &AppState, headers: &axum::http::HeaderMap) -> Option<CsrfToken> {
    let name = login_cookie_name(state);
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(CsrfToken)
}

/// The sign-in form's token: the browser's, or a new one with the `Set-Cookie` that gives it.
fn login_csrf(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> (CsrfToken, Option<axum::http::HeaderValue>) {
    if let Some(token) = login_csrf_cookie(state, headers) {
        return (token, None);
    }
    let token = CsrfToken::generate();
    let secure = if state.config.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=28800{secure}",
        login_cookie_name(state),
        token.as_str()
    );
    (token, axum::http::HeaderValue::from_str(&cookie).ok())
}

fn with_cookie(mut response: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    response
}

async fn session_csrf(session: &Session) -> Result<CsrfToken, PageError> {
    let existing: Option<String> = session.get(CSRF_KEY).await.map_err(PageError::internal)?;
    match existing {
        Some(token) => Ok(CsrfToken(token)),
        None => {
            let token = CsrfToken::generate();
            session
                .insert(CSRF_KEY, token.as_str())
                .await
                .map_err(PageError::internal)?;
            Ok(token)
        }
    }
}

/// An in-app admin path (`/admin` or `/admin/…`, optionally with a query) that is safe to
/// redirect to: no scheme, no host, no `//`, no backslash, no dot segments, no encoded tricks in
/// the path, printable ASCII only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPath(String);

impl ReturnPath {
    /// Accepts only paths that cannot leave samgate's admin area.
    pub fn parse(candidate: &str) -> Option<Self> {
        if candidate.len() > 1024 || !candidate.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return None;
        }
        let (path, query) = match candidate.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (candidate, None),
        };
        let in_admin = path == "/admin" || path.starts_with("/admin/");
        let clean_path = path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
            && !path.contains("//")
            && !path
                .split('/')
                .any(|segment| segment == "." || segment == "..");
        let clean_query = query.is_none_or(|q| !q.contains('\\') && !q.contains('#'));
        (in_admin && clean_path && clean_query).then(|| Self(candidate.to_owned()))
    }

    /// The dashboard.
    pub fn dashboard() -> Self {
        Self("/admin".to_owned())
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn login_redirect(parts: &Parts, state: &AppState) -> Response {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return session_ended_redirect(parts, state);
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(ReturnPath::parse)
        .filter(|p| p.as_str() != "/admin");
    let location = match target {
        Some(path) => format!(
            "/admin/login?{}",
            serde_urlencoded::to_string([("return_to", path.as_str())]).unwrap_or_default()
        ),
        None => "/admin/login".to_owned(),
    };
    Redirect::to(&location).into_response()
}

/// A form sent after its session ended was not acted on: the sign-in page says so, then returns
/// to the page the form was on (its `Referer`, when that is an admin page of this origin; else
/// the section of the form's target) so it can be submitted again.
fn session_ended_redirect(parts: &Parts, state: &AppState) -> Response {
    let from_referer = parts
        .headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|r| r.origin() == state.config.public_url.origin())
        .and_then(|r| {
            let path = match r.query() {
                Some(q) => format!("{}?{q}", r.path()),
                None => r.path().to_owned(),
            };
            ReturnPath::parse(&path)
        });
    let section = || {
        let mut segments = parts.uri.path().split('/').filter(|s| !s.is_empty());
        let path = match (segments.next(), segments.next()) {
            (Some("admin"), Some(area)) => format!("/admin/{area}"),
            _ => "/admin".to_owned(),
        };
        ReturnPath::parse(&path).unwrap_or_else(ReturnPath::dashboard)
    };
    let target = from_referer.unwrap_or_else(section);
    let query = serde_urlencoded::to_string([("return_to", target.as_str()), ("ended", "1")])
        .unwrap_or_default();
    Redirect::to(&format!("/admin/login?{query}")).into_response()
}

/// The signed-in staff member of this request: the session's staff id, an active account, the
/// same session epoch as the account, within the idle and absolute timeouts. Anything else ends
/// the session and sends the browser to the sign-in page.
#[derive(Debug, Clone)]
pub struct CurrentStaff {
    /// Staff id.
    pub id: Uuid,
    /// Name shown in the UI.
    pub display_name: String,
    /// Role, as of this request.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: CsrfToken,
    /// The message the previous action left for this page (GET requests only).
    pub flash: Option<super::flash::Flash>,
    /// The admin session, for actions that leave a message for the next page.
    session: Session,
}

impl CurrentStaff {
    /// Stores `flash` for the next page and redirects (303) to `to`.
    pub async fn redirect_with(
        &self,
        to: &str,
        flash: super::flash::Flash,
    ) -> Result<Response, PageError> {
        super::flash::redirect_with(&self.session, to, flash).await
    }

    /// Refuses (403) unless this member's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), PageError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!(
                    "This needs the {needed} role; you are signed in as {}. Ask an admin if you need it.",
                    self.role
                ),
            )
            .with_detail(format!("staff {} lacks role {needed}", self.id)))
        }
    }

    /// Whether this member's role includes `role` (for showing or hiding controls).
    pub fn can(&self, role: Role) -> bool {
        self.role.allows(role)
    }

    /// The audit actor.
    pub fn actor(&self) -> Actor {
        Actor::Staff(self.id)
    }

    /// The layout data for a page in `section`.
    pub fn frame(&self, section: &'static str) -> PageFrame {
        PageFrame {
            staff_name: self.display_name.clone(),
            role: self.role,
            csrf: self.csrf.as_str().to_owned(),
            section,
            flash: self.flash.clone(),
        }
    }
}

impl FromRequestParts<AppState> for CurrentStaff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(staff) = parts.extensions.get::<CurrentStaff>() {
            return Ok(staff.clone());
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                PageError::internal("admin route without a session layer").into_response()
            })?;
        let signed_in: Option<SignedIn> = session
            .get(SIGNED_IN_KEY)
            .await
            .map_err(|e| PageError::internal(e).into_response())?;
        let Some(mut signed_in) = signed_in else {
            return Err(login_redirect(parts, state));
        };
        let now = state.clock.now().unix_timestamp();
        let expired = now - signed_in.signed_in_at > ABSOLUTE_TIMEOUT.whole_seconds()
            || now - signed_in.last_seen_at > IDLE_TIMEOUT.whole_seconds();
        let member = if expired {
            None
        } else {
            db::staff::find(&state.pool, signed_in.staff_id)
                .await
                .map_err(|e| PageError::internal(e).into_response())?
                .filter(|m| m.disabled_at.is_none() && m.session_epoch == signed_in.epoch)
        };
        let Some((member, role)) = member.and_then(|m| Role::parse(&m.role).map(|r| (m, r))) else {
            tracing::info!(staff.id = %signed_in.staff_id, expired, "staff session ended");
            session
                .flush()
                .await
                .map_err(|e| PageError::internal(e).into_response())?;
            return Err(login_redirect(parts, state));
        };
        if now - signed_in.last_seen_at >= TOUCH_INTERVAL.whole_seconds() {
            signed_in.last_seen_at = now;
            session
                .insert(SIGNED_IN_KEY, &signed_in)
                .await
                .map_err(|e| PageError::internal(e).into_response())?;
        }
        let csrf = session_csrf(&session)
            .await
            .map_err(IntoResponse::into_response)?;
        // Only a page the browser navigates to shows (and so spends) the message.
        let flash = if parts.method == Method::GET {
            super::flash::take(&session)
                .await
                .map_err(IntoResponse::into_response)?
        } else {
            None
        };
        let staff = CurrentStaff {
            id: member.id,
            display_name: member.display_name,
            role,
            csrf,
            flash,
            session,
        };
        parts.extensions.insert(staff.clone());
        Ok(staff)
    }
}

/// Route layer of every `Access::Staff(role)` row: a signed-in member with at least `role`.
pub async fn require(
    State((state, role)): State<(AppState, Role)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let staff = match CurrentStaff::from_request_parts(&mut parts, &state).await {
        Ok(staff) => staff,
        Err(response) => return response,
    };
    if let Err(refused) = staff.require(role) {
        return refused.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A half-signed-in session: its password was right, its second step (a code, or the set-up of a
/// second factor) is still to come, within [`SECOND_STEP_TIMEOUT`] / [`ENROLMENT_TIMEOUT`], for an
/// active account whose sessions were not ended meanwhile. Anything else sends the browser back
/// to the sign-in page. It is the only thing such a session can prove.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    /// The member whose password was right.
    pub member: crate::db::staff::StaffMember,
    /// What is still to do.
    pub awaiting: Awaiting,
    /// Where the browser goes once signed in.
    pub return_to: ReturnPath,
    /// The session's CSRF token.
    pub csrf: CsrfToken,
}

impl FromRequestParts<AppState> for PendingSignIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(pending) = parts.extensions.get::<PendingSignIn>() {
            return Ok(pending.clone());
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                PageError::internal("admin route without a session layer").into_response()
            })?;
        let pending: Option<HalfSignedIn> = session
            .get(SECOND_STEP_KEY)
            .await
            .map_err(|e| PageError::internal(e).into_response())?;
        let Some(pending) = pending else {
            return Err(Redirect::to("/admin/login").into_response());
        };
        let now = state.clock.now().unix_timestamp();
        let expired = now - pending.started_at > pending.awaiting.timeout().whole_seconds();
        let member = if expired {
            None
        } else {
            db::staff::find(&state.pool, pending.staff_id)
                .await
                .map_err(|e| PageError::internal(e).into_response())?
                .filter(|m| m.disabled_at.is_none() && m.session_epoch == pending.epoch)
        };
        let Some(member) = member else {
            tracing::info!(staff.id = %pending.staff_id, expired, "staff sign-in abandoned before its second step");
            session
                .remove_value(SECOND_STEP_KEY)
                .await
                .map_err(|e| PageError::internal(e).into_response())?;
            return Err(Redirect::to("/admin/login").into_response());
        };
        let csrf = session_csrf(&session)
            .await
            .map_err(IntoResponse::into_response)?;
        let pending = PendingSignIn {
            member,
            awaiting: pending.awaiting,
            return_to: ReturnPath::parse(&pending.return_to).unwrap_or_else(ReturnPath::dashboard),
            csrf,
        };
        parts.extensions.insert(pending.clone());
        Ok(pending)
    }
}

/// Route layer of every `Access::SecondStep` row: a half-signed-in session.
pub async fn require_second_step(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Err(response) = PendingSignIn::from_request_parts(&mut parts, &state).await {
        return response;
    }
    next.run(Request::from_parts(parts, body)).await
}

fn csrf_refused(detail: &str) -> Response {
    PageError::new(
        StatusCode::FORBIDDEN,
        "This form was not accepted",
        "The form came from an old page, another site, or a session that has ended. Go back, \
         reload the page and try again.",
    )
    .with_detail(format!("csrf: {detail}"))
    .into_response()
}

/// Layer over every admin route: a POST must come from samgate's origin and carry the session's
/// CSRF token in the `csrf` form field.
pub async fn check_csrf(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let own = state.config.public_url.origin().ascii_serialization();
    if !crate::web::same_origin(request.headers(), &own) {
        return csrf_refused("cross-origin request");
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return csrf_refused("unreadable body");
    };
    let submitted = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    let expected: Option<String> = match session.get(CSRF_KEY).await {
        Ok(token) => token,
        Err(e) => return PageError::internal(e).into_response(),
    };
    // The sign-in forms carry the token of their own cookie; every other form the session's.
    let session_token = expected.map(CsrfToken);
    let login_cookie = parts
        .uri
        .path()
        .starts_with("/admin/login")
        .then(|| login_csrf_cookie(&state, &parts.headers))
        .flatten();
    if session_token.is_none() && login_cookie.is_none() {
        // The session ended (idle timeout, sign-out elsewhere): not a forgery to explain, a
        // sign-in to ask for. The origin was checked above, so another site gets nothing here.
        if !parts.uri.path().starts_with("/admin/login") {
            tracing::info!("admin form sent after its session ended");
            return session_ended_redirect(&parts, &state);
        }
        return csrf_refused("no token in the session");
    }
    let accepted = submitted.as_deref().is_some_and(|s| {
        [&session_token, &login_cookie]
            .into_iter()
            .flatten()
            .any(|token| token.matches(s))
    });
    if accepted {
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    } else {
        csrf_refused("missing or wrong token")
    }
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    cpv_name: &'a str,
    csrf: &'a str,
    return_to: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    /// Whether a form was sent after its session ended (it was not acted on).
    ended: bool,
    /// Whether "Sign in with Microsoft" is offered.
    sso: bool,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    return_to: String,
    /// `1` when a form was sent after its session ended.
    #[serde(default)]
    ended: String,
}

/// The sign-in form. Its CSRF token travels in a cookie of its own, so an anonymous visitor
/// creates no session row.
pub async fn show_login_page(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let (csrf, cookie) = login_csrf(&state, &headers);
    let query = query.ok().map(|Query(q)| q);
    let ended = query.as_ref().is_some_and(|q| q.ended == "1");
    let return_to = query
        .and_then(|q| ReturnPath::parse(&q.return_to))
        .unwrap_or_else(ReturnPath::dashboard);
    let page = render(&LoginPage {
        cpv_name: &state.config.cpv_name,
        csrf: csrf.as_str(),
        return_to: return_to.as_str(),
        email: "",
        error: None,
        ended,
        sso: state.config.staff_sso_tenant.is_some(),
    })?
    .into_response();
    Ok(with_cookie(page, cookie))
}

/// The sign-in form's fields (no `Debug`: it holds the password).
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: String,
}

/// The client's address for the throttle (see `web::client_ip`). Without connect info (a
/// misconfigured server) every client shares one address bucket.
pub(super) fn client_address(
    state: &AppState,
    connect: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: &axum::http::HeaderMap,
) -> IpAddr {
    let peer = connect.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip());
    crate::web::client_ip::client_ip(peer, headers, &state.config.trusted_proxies)
}

/// Checks the credentials (throttled, a bounded number of Argon2 checks at once); a right
/// password signs in, or starts the second step when the account has (or, as an admin, needs) a
/// second factor.
pub async fn log_in(
    State(state): State<AppState>,
    connect: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: axum::http::HeaderMap,
    session: Session,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let axum::Form(form) = form.map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "This form is not valid",
            "Reload the sign-in page and try again.",
        )
    })?;
    let address = client_address(&state, connect, &headers);
    let now = state.clock.now();
    let return_to = ReturnPath::parse(&form.return_to).unwrap_or_else(ReturnPath::dashboard);
    let password = SecretString::from(form.password);
    let outcome = crate::staff::sign_in(
        &state.pool,
        &state.argon2,
        &form.email,
        password,
        address,
        now,
    )
    .await
    .map_err(PageError::internal)?;
    let refusal = match outcome {
        SignIn::Accepted { member, next } => {
            let awaiting = match next {
                NextStep::SignedIn => {
                    establish_session(&state, &session, &member, "password", now).await?;
                    return Ok(Redirect::to(return_to.as_str()).into_response());
                }
                NextStep::SecondFactor => Awaiting::Code,
                NextStep::Enrolment => Awaiting::Enrolment,
            };
            begin_second_step(&session, &member, awaiting, &return_to, now).await?;
            return Ok(Redirect::to(awaiting.page()).into_response());
        }
        SignIn::Refused | SignIn::Blocked => (StatusCode::UNAUTHORIZED, SIGN_IN_REFUSED),
        SignIn::Busy => (StatusCode::SERVICE_UNAVAILABLE, SIGN_IN_BUSY),
    };
    let (csrf, cookie) = login_csrf(&state, &headers);
    let page = render(&LoginPage {
        cpv_name: &state.config.cpv_name,
        csrf: csrf.as_str(),
        return_to: return_to.as_str(),
        email: form.email.trim(),
        error: Some(refusal.1),
        ended: false,
        sso: state.config.staff_sso_tenant.is_some(),
    })?;
    let mut response = with_cookie((refusal.0, page).into_response(), cookie);
    if refusal.0 == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
    }
    Ok(response)
}

/// Puts a session whose password was right into the half-signed-in state: a fresh id, no
/// signed-in record (whoever was signed in on this browser before is not any more), a new CSRF
/// token, and what is still to do.
async fn begin_second_step(
    session: &Session,
    member: &crate::db::staff::StaffMember,
    awaiting: Awaiting,
    return_to: &ReturnPath,
    now: OffsetDateTime,
) -> Result<(), PageError> {
    session.cycle_id().await.map_err(PageError::internal)?;
    session
        .remove_value(SIGNED_IN_KEY)
        .await
        .map_err(PageError::internal)?;
    session
        .insert(
            SECOND_STEP_KEY,
            HalfSignedIn {
                staff_id: member.id,
                epoch: member.session_epoch,
                started_at: now.unix_timestamp(),
                return_to: return_to.as_str().to_owned(),
                awaiting,
            },
        )
        .await
        .map_err(PageError::internal)?;
    session
        .insert(CSRF_KEY, CsrfToken::generate().as_str())
        .await
        .map_err(PageError::internal)?;
    tracing::info!(staff.id = %member.id, staff.awaiting = ?awaiting, "staff password accepted; second step pending");
    Ok(())
}

#[derive(Template)]
#[template(path = "admin/second_factor.html")]
struct SecondFactorPage<'a> {
    cpv_name: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

/// A code typed into a form (no `Debug`: it holds the code).
#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub(super) code: String,
}

/// `GET /admin/login/verify`: asks a half-signed-in member for a code.
pub async fn show_second_factor_page(
    State(state): State<AppState>,
    pending: PendingSignIn,
) -> Result<Response, PageError> {
    if pending.awaiting != Awaiting::Code {
        return Ok(Redirect::to(pending.awaiting.page()).into_response());
    }
    Ok(render(&SecondFactorPage {
        cpv_name: &state.config.cpv_name,
        csrf: pending.csrf.as_str(),
        error: None,
    })?
    .into_response())
}

/// `POST /admin/login/verify`: checks the code (throttled like passwords); a right one signs in.
pub async fn verify_second_factor(
    State(state): State<AppState>,
    connect: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: axum::http::HeaderMap,
    session: Session,
    pending: PendingSignIn,
    form: Result<axum::Form<CodeForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    if pending.awaiting != Awaiting::Code {
        return Ok(Redirect::to(pending.awaiting.page()).into_response());
    }
    let code = form.map(|axum::Form(f)| f.code).unwrap_or_default();
    let address = client_address(&state, connect, &headers);
    let now = state.clock.now();
    let outcome = crate::staff::mfa::verify_second_step(
        &state.pool,
        &state.vault,
        pending.member.id,
        &code,
        address,
        now,
    )
    .await
    .map_err(PageError::internal)?;
    match outcome {
        SecondStep::Accepted(member, factor) => {
            establish_session(&state, &session, &member, factor.sign_in_method(), now).await?;
            Ok(Redirect::to(pending.return_to.as_str()).into_response())
        }
        SecondStep::Refused | SecondStep::Blocked => {
            let page = render(&SecondFactorPage {
                cpv_name: &state.config.cpv_name,
                csrf: pending.csrf.as_str(),
                error: Some(SECOND_STEP_REFUSED),
            })?;
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "admin/mfa_setup.html")]
struct MfaSetupPage<'a> {
    cpv_name: &'a str,
    csrf: &'a str,
    /// The secret and its URI, shown once right after they are drawn.
    enrolment: Option<(&'a str, &'a str)>,
    /// Whether the confirm form is shown (a secret is pending).
    confirm: bool,
    error: Option<&'a str>,
}

/// `GET /admin/login/enrol`: an admin without a second factor must set one up first.
pub async fn show_enrolment_page(
    State(state): State<AppState>,
    pending: PendingSignIn,
) -> Result<Response, PageError> {
    if pending.awaiting != Awaiting::Enrolment {
        return Ok(Redirect::to(pending.awaiting.page()).into_response());
    }
    Ok(render(&MfaSetupPage {
        cpv_name: &state.config.cpv_name,
        csrf: pending.csrf.as_str(),
        enrolment: None,
        confirm: false,
        error: None,
    })?
    .into_response())
}

/// `POST /admin/login/enrol`: draws the secret and shows it (once).
pub async fn start_forced_enrolment(
    State(state): State<AppState>,
    pending: PendingSignIn,
) -> Result<Response, PageError> {
    if pending.awaiting != Awaiting::Enrolment {
        return Ok(Redirect::to(pending.awaiting.page()).into_response());
    }
    let enrolment = crate::staff::mfa::begin_enrolment(
        &state.pool,
        &state.vault,
        pending.member.id,
        &state.config.cpv_name,
        state.clock.now(),
    )
    .await;
    let enrolment = match enrolment {
        Ok(enrolment) => enrolment,
        // Set up meanwhile (another tab): sign in again, now with a code.
        Err(StaffError::MfaAlreadyOn) => return Ok(Redirect::to("/admin/login").into_response()),
        Err(e) => return Err(PageError::internal(e)),
    };
    use secrecy::ExposeSecret;
    Ok(render(&MfaSetupPage {
        cpv_name: &state.config.cpv_name,
        csrf: pending.csrf.as_str(),
        enrolment: Some((
            enrolment.secret.expose_secret(),
            enrolment.uri.expose_secret(),
        )),
        confirm: true,
        error: None,
    })?
    .into_response())
}

/// `POST /admin/login/enrol/confirm`: a current code confirms the secret; the member is signed
/// in and sees the recovery codes once.
pub async fn confirm_forced_enrolment(
    State(state): State<AppState>,
    session: Session,
    pending: PendingSignIn,
    form: Result<axum::Form<CodeForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    if pending.awaiting != Awaiting::Enrolment {
        return Ok(Redirect::to(pending.awaiting.page()).into_response());
    }
    let code = form.map(|axum::Form(f)| f.code).unwrap_or_default();
    let now = state.clock.now();
    let confirmed = crate::staff::mfa::confirm_enrolment(
        &state.pool,
        &state.vault,
        pending.member.id,
        &code,
        now,
    )
    .await;
    let codes = match confirmed {
        Ok(codes) => codes,
        Err(e @ (StaffError::WrongCode | StaffError::NoEnrolment)) => {
            let page = render(&MfaSetupPage {
                cpv_name: &state.config.cpv_name,
                csrf: pending.csrf.as_str(),
                enrolment: None,
                confirm: matches!(e, StaffError::WrongCode),
                error: Some(super::account::ENROLMENT_CODE_REFUSED),
            })?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        Err(StaffError::MfaAlreadyOn) => return Ok(Redirect::to("/admin/login").into_response()),
        Err(e) => return Err(PageError::internal(e)),
    };
    db::staff::touch_login(&state.pool, pending.member.id, now)
        .await
        .map_err(PageError::internal)?;
    let csrf = establish_session(&state, &session, &pending.member, "password+totp", now).await?;
    let role = Role::parse(&pending.member.role).unwrap_or(Role::Viewer);
    let frame = super::view::PageFrame {
        staff_name: pending.member.display_name.clone(),
        role,
        csrf: csrf.as_str().to_owned(),
        section: "account",
        flash: None,
    };
    super::account::show_recovery_codes(frame, &codes, pending.return_to.as_str(), true)
}

/// Signs `member` in on this session, whatever the method: a fresh session id (a session id
/// planted before sign-in is worthless afterwards), the signed-in record (and no half-signed-in
/// one), a new CSRF token (returned), the audit event.
async fn establish_session(
    state: &AppState,
    session: &Session,
    member: &crate::db::staff::StaffMember,
    method: &str,
    now: OffsetDateTime,
) -> Result<CsrfToken, PageError> {
    session.cycle_id().await.map_err(PageError::internal)?;
    session
        .remove_value(SECOND_STEP_KEY)
        .await
        .map_err(PageError::internal)?;
    session
        .insert(
            SIGNED_IN_KEY,
            SignedIn {
                staff_id: member.id,
                epoch: member.session_epoch,
                signed_in_at: now.unix_timestamp(),
                last_seen_at: now.unix_timestamp(),
            },
        )
        .await
        .map_err(PageError::internal)?;
    let csrf = CsrfToken::generate();
    session
        .insert(CSRF_KEY, csrf.as_str())
        .await
        .map_err(PageError::internal)?;
    record(
        state,
        &Actor::Staff(member.id),
        "staff.signed_in",
        serde_json::json!({ "staff_id": member.id, "method": method }),
        now,
    )
    .await?;
    tracing::info!(staff.id = %member.id, method, "staff signed in");
    Ok(csrf)
}

/// The one message for every refused sign-in with Microsoft: it says nothing about whether a
/// staff account exists for the Microsoft account.
pub const SSO_REFUSED: &str = "Sign-in with Microsoft did not give access to this control panel. \
     Use the work account your administrator gave staff access to, or sign in with your email and \
     password.";
const SSO_FLOW_KEY: &str = "admin.sso_flow";
/// A sign-in with Microsoft older than this is refused at the callback.
const SSO_FLOW_MAX_AGE_SECONDS: i64 = 10 * 60;
/// Callback parameters longer than this are refused before anything else.
const SSO_MAX_PARAM_LEN: usize = 8 * 1024;
/// The refusal of a sign-in with Microsoft that did not use MFA (shown before any staff lookup,
/// so it says nothing about whether the account has staff access).
pub const SSO_NEEDS_MFA: &str = "Your Microsoft sign-in did not use multi-factor \
     authentication, which this control panel requires. Sign in with multi-factor authentication \
     (set up a method at https://aka.ms/mfasetup if you have none) and try again.";

/// Beyond OpenID Connect, staff sign-in asks for Graph `User.Read`, so that the code redemption
/// returns an access token whose `amr` proves MFA (v2 ID tokens carry no `amr`). No refresh token.
fn sso_user_read_scope(state: &AppState) -> String {
    format!(
        "{}/User.Read",
        state.config.microsoft.graph_resource.trim_end_matches('/')
    )
}

/// What the session remembers between "Sign in with Microsoft" and the callback.
type SsoFlow = AuthCodeFlow<SsoContext>;

/// What a staff sign-in remembers beside the flow's state, nonce and verifier.
#[derive(Debug, Serialize, Deserialize)]
struct SsoContext {
    return_to: String,
}

/// The "Sign in with Microsoft" form.
#[derive(Deserialize)]
pub struct SsoStartForm {
    #[serde(default)]
    return_to: String,
}

/// Starts a staff sign-in with Microsoft at the CPV's own tenant: state, nonce and PKCE verifier
/// kept in the admin session (under a fresh id), the browser sent to the authorize endpoint.
pub async fn start_sso(
    State(state): State<AppState>,
    session: Session,
    form: Result<axum::Form<SsoStartForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let Some(tenant) = state.config.staff_sso_tenant else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "Sign-in with Microsoft is not enabled.",
        ));
    };
    let return_to = form
        .ok()
        .and_then(|axum::Form(f)| ReturnPath::parse(&f.return_to))
        .unwrap_or_else(ReturnPath::dashboard);
    let tenant = tenant.to_string();
    let redirect_uri = state.config.staff_sso_redirect_uri();
    let (flow, url) = SsoFlow::begin(
        &state.identity,
        &BeginRequest {
            scopes_base: FlowScopes::SignIn,
            tenant: &tenant,
            redirect_uri: &redirect_uri,
            scopes: &[sso_user_read_scope(&state)],
            prompt: Prompt::SelectAccount,
            login_hint: None,
            domain_hint: None,
        },
        SsoContext {
            return_to: return_to.as_str().to_owned(),
        },
        state.clock.now(),
    )
    .map_err(PageError::internal)?;
    // A new id for the new flow: a session id planted before this point is worthless.
    session.cycle_id().await.map_err(PageError::internal)?;
    session
        .insert(SSO_FLOW_KEY, &flow)
        .await
        .map_err(PageError::internal)?;
    Ok(Redirect::to(url.as_str()).into_response())
}

/// Microsoft's answer to a staff sign-in (`response_mode=query`).
#[derive(Deserialize)]
pub struct SsoCallback {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Why a sign-in with Microsoft was refused: the reason is for the log line only, never shown;
/// the page shows `message`.
struct SsoRefusal {
    reason: String,
    /// [`crate::staff::log_hash`] of the Microsoft account's sign-in name, once known.
    who: Option<String>,
    message: &'static str,
}

impl SsoRefusal {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            who: None,
            message: SSO_REFUSED,
        }
    }

    fn of(who: &str, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            who: Some(crate::staff::log_hash(who)),
            message: SSO_REFUSED,
        }
    }
}

/// Microsoft sends the browser back here: the flow is taken out of the session (single use), the
/// state compared, the code redeemed, the ID token validated, and the account must belong to the
/// configured tenant, have signed in with MFA, and match an active staff member.
pub async fn finish_sso(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<SsoCallback>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Some(tenant) = state.config.staff_sso_tenant else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "Sign-in with Microsoft is not enabled.",
        ));
    };
    // Taken out before anything else: whatever happens next, this flow cannot be replayed.
    let flow: Option<SsoFlow> = session
        .remove(SSO_FLOW_KEY)
        .await
        .map_err(PageError::internal)?;
    let now = state.clock.now();
    let outcome = match query {
        Ok(Query(params)) => sso_member(&state, tenant, flow, params, now).await?,
        Err(_) => Err(SsoRefusal::new("malformed callback")),
    };
    match outcome {
        Ok((member, return_to)) => {
            establish_session(&state, &session, &member, "sso", now).await?;
            Ok(Redirect::to(return_to.as_str()).into_response())
        }
        Err(refusal) => {
            tracing::info!(
                staff.login = refusal.who.as_deref().unwrap_or("-"),
                reason = %refusal.reason,
                "staff sign-in with Microsoft refused"
            );
            let csrf = session_csrf(&session).await?;
            let page = render(&LoginPage {
                cpv_name: &state.config.cpv_name,
                csrf: csrf.as_str(),
                return_to: ReturnPath::dashboard().as_str(),
                email: "",
                error: Some(refusal.message),
                ended: false,
                sso: true,
            })?;
            Ok((StatusCode::FORBIDDEN, page).into_response())
        }
    }
}

type SsoOutcome = Result<(crate::db::staff::StaffMember, ReturnPath), SsoRefusal>;

async fn sso_member(
    state: &AppState,
    tenant: Uuid,
    flow: Option<SsoFlow>,
    params: SsoCallback,
    now: OffsetDateTime,
) -> Result<SsoOutcome, PageError> {
    let too_long = [&params.state, &params.code, &params.error]
        .iter()
        .any(|p| p.as_ref().is_some_and(|v| v.len() > SSO_MAX_PARAM_LEN));
    if too_long {
        return Ok(Err(SsoRefusal::new("callback parameter too long")));
    }
    let Some(flow) = flow else {
        return Ok(Err(SsoRefusal::new(
            "no sign-in in progress in this session",
        )));
    };
    let tenant_segment = tenant.to_string();
    let redirect_uri = state.config.staff_sso_redirect_uri();
    let scope = format!(
        "{} {}",
        crate::identity::SIGN_IN_SCOPES.join(" "),
        sso_user_read_scope(state)
    );
    let callback = Callback {
        state: params.state.as_deref(),
        code: params.code.map(SecretString::from),
        error: params.error.as_deref().map(|e| (e, None)),
    };
    let redemption = Redemption {
        tenant: &tenant_segment,
        redirect_uri: &redirect_uri,
        scope: &scope,
    };
    let signed_in = flow
        .finish(
            &state.identity,
            callback,
            SSO_FLOW_MAX_AGE_SECONDS,
            &redemption,
            now,
        )
        .await;
    let CompletedFlow {
        claims,
        tokens,
        context,
    } = match signed_in {
        Ok(signed_in) => signed_in,
        Err(FlowError::Microsoft(classified)) => {
            return Ok(Err(SsoRefusal::new(format!(
                "Microsoft returned {}",
                classified.error.chars().take(64).collect::<String>()
            ))));
        }
        Err(e) => return Ok(Err(SsoRefusal::new(e.to_string()))),
    };
    let username = claims.preferred_username.clone().unwrap_or_default();
    if claims.tenant() != tenant {
        return Ok(Err(SsoRefusal::of(
            &username,
            format!("account of another tenant ({})", claims.tid),
        )));
    }
    // MFA evidence, as for partner consents: the ID token's `amr` when it has one, else the
    // `amr` of the access token this very code redemption returned over TLS.
    let mfa = match &claims.amr {
        Some(amr) => amr.iter().any(|m| m == "mfa"),
        None => {
            access_token_amr(&tokens.access_token).is_some_and(|amr| amr.iter().any(|m| m == "mfa"))
        }
    };
    if !mfa {
        record(
            state,
            &Actor::SsoAccount(claims.oid),
            "staff.sso_refused",
            serde_json::json!({ "reason": "no_mfa", "oid": claims.oid, "tenant": tenant }),
            now,
        )
        .await?;
        let mut refusal = SsoRefusal::of(&username, "the sign-in did not use MFA");
        refusal.message = SSO_NEEDS_MFA;
        return Ok(Err(refusal));
    }
    // Matched by the account's object id in the CPV tenant; the sign-in name (mutable, a
    // guest's home UPN) only finds the staff row for the first binding.
    let bound = db::staff::find_by_sso_oid(&state.pool, claims.oid)
        .await
        .map_err(PageError::internal)?;
    let member = match bound {
        Some(member) => Some(member),
        None => {
            let Some(email) = StaffEmail::parse(&username) else {
                return Ok(Err(SsoRefusal::of(
                    &username,
                    "sign-in name is not an email address",
                )));
            };
            let found = db::staff::find_by_email(&state.pool, email.as_str())
                .await
                .map_err(PageError::internal)?;
            match found {
                Some(m) => {
                    let existing = db::staff::sso_oid(&state.pool, m.id)
                        .await
                        .map_err(PageError::internal)?;
                    if existing.is_some_and(|oid| oid != claims.oid) {
                        return Ok(Err(SsoRefusal::of(
                            &username,
                            "the staff account is bound to another Microsoft account",
                        )));
                    }
                    if m.disabled_at.is_none()
                        && db::staff::bind_sso_oid(&state.pool, m.id, claims.oid)
                            .await
                            .map_err(PageError::internal)?
                    {
                        record(
                            state,
                            &Actor::Staff(m.id),
                            "staff.sso_bound",
                            serde_json::json!({ "staff_id": m.id, "oid": claims.oid, "tenant": tenant }),
                            now,
                        )
                        .await?;
                    }
                    Some(m)
                }
                None => None,
            }
        }
    };
    let member = match member {
        Some(m) if m.disabled_at.is_none() && Role::parse(&m.role).is_some() => m,
        Some(_) => return Ok(Err(SsoRefusal::of(&username, "staff account disabled"))),
        None => return Ok(Err(SsoRefusal::of(&username, "no staff account"))),
    };
    db::staff::touch_login(&state.pool, member.id, now)
        .await
        .map_err(PageError::internal)?;
    let return_to = ReturnPath::parse(&context.return_to).unwrap_or_else(ReturnPath::dashboard);
    Ok(Ok((member, return_to)))
}

async fn record(
    state: &AppState,
    actor: &Actor,
    action: &str,
    details: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), PageError> {
    db::audit::record(&state.pool, actor, action, None, details, now)
        .await
        .map_err(PageError::internal)
}

/// Ends this session.
pub async fn log_out(
    State(state): State<AppState>,
    staff: CurrentStaff,
    session: Session,
) -> Result<Response, PageError> {
    record(
        &state,
        &staff.actor(),
        "staff.signed_out",
        serde_json::json!({ "staff_id": staff.id }),
        state.clock.now(),
    )
    .await?;
    session.flush().await.map_err(PageError::internal)?;
    Ok(Redirect::to("/admin/login").into_response())
}

/// Ends every session of the signed-in member, this one included.
pub async fn log_out_everywhere(
    State(state): State<AppState>,
    staff: CurrentStaff,
    session: Session,
) -> Result<Response, PageError> {
    crate::staff::end_sessions(&state.pool, staff.id, &staff.actor(), state.clock.now())
        .await
        .map_err(PageError::internal)?;
    session.flush().await.map_err(PageError::internal)?;
    Ok(Redirect::to("/admin/login").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_inside_the_admin_area() {
        for good in [
            "/admin",
            "/admin/partners",
            "/admin/partners?q=contoso&status=healthy",
            "/admin/partners/0193a1b2-0000-7000-8000-000000000000",
            "/admin/audit?actor=staff%3Aabc",
        ] {
            assert!(ReturnPath::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "/",
            "//evil.com",
            "https://evil.com",
            "http://evil.com/admin",
            "/\\evil.com",
            "/admin/../..",
            "/admin/..",
            "/admin//evil.com",
            "/admin/%2e%2e/x",
            "/admin\\..\\x",
            "/administrator",
            "/admin/x y",
            "/admin/\r\nLocation: x",
            "/admin?x=\\y",
            "admin",
            "/consent/x",
        ] {
            assert!(ReturnPath::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_origin_check_accepts_only_samgate() {
        use crate::web::same_origin;
        use axum::http::{HeaderMap, header};
        let own = "http://127.0.0.1:8080";
        let with = |name: header::HeaderName, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, value.parse().expect("header"));
            headers
        };
        assert!(same_origin(&HeaderMap::new(), own));
        assert!(same_origin(&with(header::ORIGIN, own), own));
        assert!(!same_origin(
            &with(header::ORIGIN, "https://evil.example"),
            own
        ));
        assert!(!same_origin(&with(header::ORIGIN, "null"), own));
        assert!(same_origin(
            &with(header::REFERER, "http://127.0.0.1:8080/admin/staff"),
            own
        ));
        assert!(!same_origin(
            &with(header::REFERER, "http://127.0.0.1:8081/admin"),
            own
        ));
    }
}
