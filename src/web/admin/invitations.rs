//! Invitations: list with state, create (link shown once), revoke.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::partners::InvitationCreatedPage;
use super::view::{PageFrame, consent_link, when};
use crate::app::AppState;
use crate::db;
use crate::onboarding::{self, InvitationState, NewInvitationRequest, parse_expected_tenant};
use crate::web::errors::{PageError, render};

const MAX_DAYS: u64 = 90;

struct InvitationLine {
    id: Uuid,
    partner_name: String,
    expected_tenant: String,
    state: &'static str,
    state_class: &'static str,
    created: String,
    created_relative: String,
    expires: String,
    expires_relative: String,
    reconsent_of: Option<Uuid>,
    pending: bool,
}

/// The form's values, echoed back when one is wrong.
#[derive(Debug, Default, Deserialize)]
pub struct InvitationForm {
    #[serde(default)]
    partner_name: String,
    #[serde(default)]
    expected_tenant: String,
    #[serde(default)]
    expires_days: String,
}

#[derive(Template)]
#[template(path = "admin/invitations.html")]
struct InvitationsPage {
    frame: PageFrame,
    invitations: Vec<InvitationLine>,
    form: InvitationForm,
    default_days: u64,
    max_days: u64,
    error: Option<String>,
}

async fn invitations_page(
    state: &AppState,
    staff: &CurrentStaff,
    form: InvitationForm,
    error: Option<String>,
) -> Result<InvitationsPage, PageError> {
    let now = state.clock.now();
    let rows = db::invitations::list(&state.pool, 100)
        .await
        .map_err(PageError::internal)?;
    let invitations = rows
        .into_iter()
        .map(|i| {
            let (state, state_class) = match InvitationState::of(Some(i.clone()), now) {
                InvitationState::Usable(_) => ("pending", "neutral"),
                InvitationState::Used => ("used", "ok"),
                InvitationState::Expired => ("expired", "warn"),
                InvitationState::Revoked | InvitationState::Unknown => ("revoked", "bad"),
            };
            InvitationLine {
                id: i.id,
                partner_name: i.partner_name,
                expected_tenant: i.expected_tenant.unwrap_or_default(),
                state,
                state_class,
                created: when(i.created_at),
                created_relative: crate::clock::relative(i.created_at, now),
                expires: when(i.expires_at),
                expires_relative: crate::clock::relative(i.expires_at, now),
                reconsent_of: i.partner_id.filter(|_| i.used_at.is_none()),
                pending: state == "pending",
            }
        })
        .collect();
    Ok(InvitationsPage {
        frame: staff.frame("invitations"),
        invitations,
        form,
        default_days: default_days(state),
        max_days: MAX_DAYS,
        error,
    })
}

fn default_days(state: &AppState) -> u64 {
    (state.config.invitation_ttl.as_secs() / 86_400).clamp(1, MAX_DAYS)
}

/// `GET /admin/invitations`.
pub async fn list_invitations(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, PageError> {
    let page = invitations_page(&state, &staff, InvitationForm::default(), None).await?;
    Ok(render(&page)?.into_response())
}

/// `POST /admin/invitations`: validates, creates, shows the link once.
pub async fn create_invitation(
    State(state): State<AppState>,
    staff: CurrentStaff,
    form: Result<axum::Form<InvitationForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let axum::Form(form) = form.map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "This form is not valid",
            "Reload the invitations page and try again.",
        )
    })?;
    let partner_name = form.partner_name.trim().to_owned();
    let expected = form.expected_tenant.trim();
    let expected_tenant = if expected.is_empty() {
        Ok(None)
    } else {
        parse_expected_tenant(expected).map(Some).ok_or(
            "The expected tenant must be a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com.",
        )
    };
    let days = match form.expires_days.trim() {
        "" => Ok(default_days(&state)),
        text => text
            .parse::<u64>()
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or("The expiry must be a whole number of days from 1 to 90."),
    };
    let problem = if partner_name.is_empty() || partner_name.chars().count() > 200 {
        Some("Enter the partner's name (up to 200 characters).")
    } else {
        expected_tenant
            .as_ref()
            .err()
            .or(days.as_ref().err())
            .copied()
    };
    let (Some(()), Ok(expected_tenant), Ok(days)) =
        (problem.is_none().then_some(()), expected_tenant, days)
    else {
        let message = problem.unwrap_or("The form is not valid.").to_owned();
        let page = invitations_page(&state, &staff, form, Some(message)).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
    };
    let actor = staff.actor();
    let (invitation, token) = onboarding::create_invitation(
        &state.pool,
        &NewInvitationRequest {
            partner_name: &partner_name,
            expected_tenant: expected_tenant.as_deref(),
            login_hint: None,
            partner_id: None,
            ttl: std::time::Duration::from_secs(days * 86_400),
            created_by: &actor,
        },
        state.clock.now(),
    )
    .await
    .map_err(PageError::internal)?;
    Ok(render(&InvitationCreatedPage {
        frame: staff.frame("invitations"),
        partner_name,
        link: consent_link(&state, &token),
        expires: when(invitation.expires_at),
        reconsent: false,
        partner_id: None,
    })?
    .into_response())
}

/// `POST /admin/invitations/{id}/revoke`.
pub async fn revoke_invitation(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let not_pending = || {
        PageError::new(
            StatusCode::CONFLICT,
            "This invitation cannot be revoked",
            "It was already used or revoked, or it does not exist. Check the invitations list.",
        )
    };
    let id = Uuid::parse_str(&id).map_err(|_| not_pending())?;
    let now = state.clock.now();
    if !crate::onboarding::revoke_invitation(&state.pool, id, &staff.actor(), now)
        .await
        .map_err(PageError::internal)?
    {
        return Err(not_pending());
    }
    staff
        .redirect_with(
            "/admin/invitations",
            super::flash::Flash::success("Invitation revoked: its link no longer works."),
        )
        .await
}
