//! Public consent pages for partner admins: the invitation page, the redirect to Microsoft, the
//! OAuth callback and its outcome pages. Auth: the invitation token, then the server-side session
//! that holds state, nonce and PKCE verifier. A completed consent redirects (303) to
//! `/consent/done`, which reads its non-secret facts from the session: refresh and Back show it again.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::app::AppState;
use crate::config::SupportContact;
use crate::identity::IdentityError;
use crate::identity::errors::partner_message;
use crate::onboarding::{
    self, ConsentError, ConsentFlow, InvitationState, InvitationToken, find_invitation,
};
use crate::web::errors::{PageError, PartnerBrand, render};

const FLOW_KEY: &str = "consent_flow";
/// The facts of the consent this browser completed, for `/consent/done`.
const DONE_KEY: &str = "consent_done";
const DONE_PATH: &str = "/consent/done";
/// Longest value accepted for any callback parameter (codes are ~1–2 KB).
const MAX_PARAM_LEN: usize = 8 * 1024;

/// `/consent/{token}`, `/consent/{token}/start`, `/oauth/callback`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(DONE_PATH, get(show_consent_done_page))
        .route("/consent/{token}", get(show_consent_page))
        .route("/consent/{token}/start", post(start_consent_flow))
        .route(
            "/oauth/callback",
            get(handle_oauth_callback_query).post(handle_oauth_callback_form),
        )
}

struct Permission {
    title: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "consent/invitation.html")]
struct InvitationPage<'a> {
    cpv_name: &'a str,
    partner_name: &'a str,
    token: &'a str,
    permissions: Vec<Permission>,
    reconsent: bool,
    expires: String,
    support: &'a SupportContact,
}

#[derive(Template)]
#[template(path = "consent/success.html")]
struct ConsentSuccessPage<'a> {
    cpv_name: &'a str,
    done: &'a ConsentDone,
    consented_at: String,
    support: &'a SupportContact,
}

/// What the success page shows, kept in the session: names and ids, never a token or a code.
#[derive(Debug, Serialize, Deserialize)]
struct ConsentDone {
    organization: String,
    tenant_id: String,
    consented_by: String,
    consented_by_upn: String,
    reconsent: bool,
    /// Unix seconds.
    consented_at: i64,
}

fn brand(state: &AppState) -> PartnerBrand {
    PartnerBrand::of(&state.config)
}

fn permissions(state: &AppState) -> Vec<Permission> {
    let mut list = vec![
        Permission {
            title: "Partner Center, as you".into(),
            detail:
                "Call the Partner Center API with the rights of your Partner Center role: read \
                     and manage customers, subscriptions, orders and billing that your role allows."
                    .into(),
        },
        Permission {
            title: "Keep this access".into(),
            detail:
                "Stay connected without you signing in again (a refresh token, kept encrypted)."
                    .into(),
        },
        Permission {
            title: "Sign you in".into(),
            detail: "Read your name, sign-in name and organisation to record who gave consent."
                .into(),
        },
    ];
    for scope in &state.config.microsoft.graph_scopes {
        list.push(Permission {
            title: format!("Microsoft Graph: {scope}"),
            detail:
                "A Microsoft Graph permission, used in your organisation and, where you manage \
                     them, in your customers' organisations."
                    .into(),
        });
    }
    list
}

fn unusable_invitation_page(state: &InvitationState) -> PageError {
    match state {
        InvitationState::Expired => PageError::new(
            StatusCode::GONE,
            "This invitation has expired",
            "Invitation links work for a limited time. Ask the people who sent it for a new one.",
        ),
        InvitationState::Used => PageError::new(
            StatusCode::GONE,
            "This invitation was already used",
            "Consent was already given with this link, which works only once. If you need to \
             give consent again, ask for a new link.",
        ),
        InvitationState::Revoked => PageError::new(
            StatusCode::GONE,
            "This invitation was withdrawn",
            "The people who sent this link have withdrawn it. Ask them for a new one if needed.",
        ),
        InvitationState::Unknown | InvitationState::Usable(_) => PageError::new(
            StatusCode::NOT_FOUND,
            "Invitation not found",
            "This link is not a valid invitation. Check that you copied the whole link.",
        ),
    }
}

async fn usable_invitation(
    state: &AppState,
    token: &str,
) -> Result<(InvitationToken, crate::db::invitations::Invitation), PageError> {
    let token = InvitationToken::parse(token)
        .ok_or_else(|| unusable_invitation_page(&InvitationState::Unknown))?;
    let found = find_invitation(&state.pool, &token, state.clock.now())
        .await
        .map_err(PageError::internal)?;
    match found {
        InvitationState::Usable(invitation) => Ok((token, invitation)),
        other => Err(unusable_invitation_page(&other)),
    }
}

/// The page a partner admin lands on from the invitation link.
async fn show_consent_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, PageError> {
    let (token, invitation) = usable_invitation(&state, &token)
        .await
        .map_err(|e| e.for_partner(brand(&state)))?;
    let expires = crate::clock::format_utc(invitation.expires_at);
    let page = render(&InvitationPage {
        cpv_name: &state.config.cpv_name,
        partner_name: &invitation.partner_name,
        token: token.expose(),
        permissions: permissions(&state),
        reconsent: invitation.partner_id.is_some(),
        expires,
        support: &state.config.support,
    })?;
    // The start form's POST must carry samgate's origin (the start refuses other origins, and
    // browsers send `Origin: null` from `no-referrer` pages); `same-origin` still never sends
    // this URL, with its token, to another site.
    Ok((
        [(
            axum::http::header::REFERRER_POLICY,
            axum::http::HeaderValue::from_static("same-origin"),
        )],
        page,
    ))
}

/// Starts the sign-in: a fresh session id, new state/nonce/PKCE in the session, then Microsoft.
async fn start_consent_flow(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    session: Session,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    // Login CSRF: another site must not start a sign-in onto someone else's invitation.
    let own = state.config.public_url.origin().ascii_serialization();
    if !crate::web::same_origin(&headers, &own) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This sign-in was started from another website",
            "For your safety, the connection can only be started from the invitation page itself. \
             Open your invitation link again and click the button there.",
        )
        .with_detail("consent start: cross-origin request")
        .for_partner(brand(&state)));
    }
    let (_, invitation) = usable_invitation(&state, &token)
        .await
        .map_err(|e| e.for_partner(brand(&state)))?;
    let partner_error_code = match invitation.partner_id {
        Some(id) => crate::db::partners::find(&state.pool, id)
            .await
            .map_err(PageError::internal)?
            .and_then(|p| p.status_code),
        None => None,
    };
    let (flow, url) = onboarding::start_consent(
        &state,
        &invitation,
        partner_error_code.as_deref(),
        state.clock.now(),
    )
    .map_err(PageError::internal)?;
    // A new id for the new flow: a session id planted before this point is worthless.
    session.cycle_id().await.map_err(PageError::internal)?;
    session
        .insert(FLOW_KEY, &flow)
        .await
        .map_err(PageError::internal)?;
    Ok(Redirect::to(url.as_str()).into_response())
}

/// The callback parameters (query for `response_mode=query`, form for `form_post`).
#[derive(Deserialize)]
pub(crate) struct CallbackParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl CallbackParams {
    /// Whether every parameter fits [`MAX_PARAM_LEN`] (checked before the session is touched).
    pub(crate) fn within_limits(&self) -> bool {
        [
            &self.state,
            &self.code,
            &self.error,
            &self.error_description,
        ]
        .iter()
        .all(|p| p.as_ref().is_none_or(|v| v.len() <= MAX_PARAM_LEN))
    }
}

async fn handle_oauth_callback_query(
    State(state): State<AppState>,
    session: Session,
    params: Result<Query<CallbackParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(params) = params.map_err(|_| malformed_callback().for_partner(brand(&state)))?;
    handle_oauth_callback(state, session, params).await
}

async fn handle_oauth_callback_form(
    State(state): State<AppState>,
    session: Session,
    params: Result<axum::Form<CallbackParams>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let axum::Form(params) = params.map_err(|_| malformed_callback().for_partner(brand(&state)))?;
    handle_oauth_callback(state, session, params).await
}

fn malformed_callback() -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This sign-in response is not valid",
        "The address you arrived at is not a sign-in response samgate can read. Open your \
         invitation link again to start over.",
    )
}

/// Microsoft sends the browser back here with a code (or an error).
async fn handle_oauth_callback(
    state: AppState,
    session: Session,
    params: CallbackParams,
) -> Result<Response, PageError> {
    if !params.within_limits() {
        return Err(malformed_callback().for_partner(brand(&state)));
    }
    // Taken out before anything else: whatever happens next, this flow cannot be replayed.
    let flow: Option<ConsentFlow> = session
        .remove(FLOW_KEY)
        .await
        .map_err(PageError::internal)?;
    let Some(flow) = flow else {
        // The callback again after a completed consent (Back, a refresh, a restored tab): the
        // consent stands, so show its outcome rather than a failure.
        let done: Option<ConsentDone> = session.get(DONE_KEY).await.map_err(PageError::internal)?;
        if done.is_some() {
            return Ok(Redirect::to(DONE_PATH).into_response());
        }
        return Err(consent_error_page(&state, ConsentError::StateMismatch));
    };
    let error = params
        .error
        .as_deref()
        .map(|e| (e, params.error_description.as_deref()));
    let outcome = onboarding::complete_consent(
        &state,
        flow,
        params.state.as_deref(),
        params.code.map(SecretString::from),
        error,
    )
    .await
    .map_err(|e| consent_error_page(&state, e))?;
    let done = ConsentDone {
        organization: outcome.organization,
        tenant_id: outcome.tenant_id.to_string(),
        consented_by: outcome.consented_by.unwrap_or_else(|| "you".to_owned()),
        consented_by_upn: outcome.consented_by_upn.unwrap_or_default(),
        reconsent: outcome.reconsent,
        consented_at: state.clock.now().unix_timestamp(),
    };
    session
        .insert(DONE_KEY, &done)
        .await
        .map_err(PageError::internal)?;
    // POST/redirect/GET: the callback URL (with its spent code) leaves the history, and a refresh
    // of the outcome re-reads it instead of replaying the sign-in.
    Ok(Redirect::to(DONE_PATH).into_response())
}

/// `GET /consent/done`: the outcome of the consent this browser completed.
async fn show_consent_done_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    let done: Option<ConsentDone> = session.get(DONE_KEY).await.map_err(PageError::internal)?;
    let Some(done) = done else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No consent to show in this browser",
            "This page shows a consent completed in this browser in the last 30 minutes. If you \
             were giving consent, open your invitation link again.",
        )
        .for_partner(brand(&state)));
    };
    let consented_at = time::OffsetDateTime::from_unix_timestamp(done.consented_at)
        .map(crate::clock::format_utc)
        .unwrap_or_default();
    let page = render(&ConsentSuccessPage {
        cpv_name: &state.config.cpv_name,
        done: &done,
        consented_at,
        support: &state.config.support,
    })?;
    Ok((
        [(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        )],
        page,
    )
        .into_response())
}

fn consent_error_page(state: &AppState, error: ConsentError) -> PageError {
    let detail = error.to_string();
    let cpv = &state.config.cpv_name;
    let page = match &error {
        ConsentError::StateMismatch | ConsentError::MissingCode => PageError::new(
            StatusCode::BAD_REQUEST,
            "This sign-in could not be matched",
            "The sign-in response does not belong to a sign-in started in this browser: it may \
             have been opened in another browser or tab, or used twice. Open your invitation link \
             again to start over.",
        ),
        ConsentError::FlowExpired => PageError::new(
            StatusCode::BAD_REQUEST,
            "This sign-in took too long",
            "Open your invitation link again and complete the sign-in within a few minutes.",
        ),
        ConsentError::Microsoft(classified)
        | ConsentError::Identity(IdentityError::Refused(classified)) => {
            let (title, message) = partner_message(classified);
            PageError::new(StatusCode::BAD_REQUEST, title, message)
        }
        ConsentError::Identity(IdentityError::Unreachable(_)) => PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Microsoft could not be reached",
            "Nothing was saved. Try again in a few minutes by opening your invitation link again.",
        ),
        ConsentError::Identity(_) => PageError::new(
            StatusCode::BAD_GATEWAY,
            "Your sign-in could not be verified",
            "Microsoft's answer could not be verified, so nothing was saved. Open your invitation \
             link again to retry; if it keeps failing, send the reference below to the people who \
             sent you the link.",
        ),
        ConsentError::InvitationUnusable => PageError::new(
            StatusCode::GONE,
            "This invitation can no longer be used",
            "It has expired, was withdrawn, or consent was already given with it. Ask for a new \
             link if you need one.",
        ),
        ConsentError::NoMfa | ConsentError::PartnerCenterRefused(_) => PageError::new(
            StatusCode::FORBIDDEN,
            "Multi-factor authentication is required",
            "You signed in without Microsoft Entra multi-factor authentication (MFA), and Partner \
             Center requires it for this access. Nothing was saved. Sign in with an admin agent \
             account that uses MFA (set it up at https://aka.ms/mfasetup, or ask your Microsoft \
             Entra administrator to require it), then open your invitation link again.",
        ),
        ConsentError::TenantMismatch => PageError::new(
            StatusCode::FORBIDDEN,
            "This account belongs to another organisation",
            "The invitation was made for a different Microsoft organisation than the account you \
             signed in with. Nothing was saved. Sign in with an account of the invited \
             organisation, or ask for a link made for yours.",
        ),
        ConsentError::TenantTaken => PageError::new(
            StatusCode::CONFLICT,
            "Your organisation is already connected",
            "Your organisation has already given consent. Nothing was changed. If the connection \
             needs renewing, ask for a re-consent link.",
        ),
        ConsentError::PartnerCenter(_) => PageError::new(
            StatusCode::BAD_GATEWAY,
            "Partner Center could not confirm your organisation",
            "Nothing was saved. Make sure the account is a Partner Center user of your \
             organisation (for example an admin agent), then try again from your invitation link.",
        ),
        ConsentError::Internal(_) => PageError::internal("consent failed"),
    };
    tracing::info!(consent.outcome = "refused", cpv = %cpv, "consent did not complete");
    page.with_detail(detail).for_partner(brand(state))
}
