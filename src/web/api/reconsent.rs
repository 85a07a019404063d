//! `POST /api/v1/partners/{partner_tid}/reconsent-invitation`: a backend that sees
//! `consent_required`/`mfa_required` asks for a re-consent link to send to the partner's admin.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;

use super::ApiCaller;
use crate::app::AppState;
use crate::domain::Actor;
use crate::onboarding;
use crate::web::errors::{ApiError, ApiErrorCode};

/// The created invitation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReconsentInvitation {
    /// The link for the partner's admin (shown once; samgate keeps only its hash).
    url: String,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// Creates a re-consent link for the partner's admin.
///
/// The answer to `consent_required` and `mfa_required`: send the link to the partner's admin, who
/// signs in with MFA and consents again; the link is bound to the partner's tenant, single-use and
/// expiring. Needs a read-write key scoped to the partner.
#[utoipa::path(
    post,
    path = "/api/v1/partners/{partner_tid}/reconsent-invitation",
    tag = "partners",
    params(("partner_tid" = uuid::Uuid, Path, description = "The partner's Microsoft tenant id.")),
    responses((status = 201, description = "The link, shown once.", body = ReconsentInvitation))
)]
pub async fn create_reconsent_invitation(
    State(state): State<AppState>,
    ApiCaller(principal): ApiCaller,
    Path(partner_tid): Path<String>,
) -> Result<(StatusCode, Json<ReconsentInvitation>), ApiError> {
    let tenant = super::scoped_tenant(&principal, &partner_tid)?;
    if principal.read_only {
        return Err(ApiError::new(
            ApiErrorCode::ForbiddenMethod,
            "this API client is read-only: it cannot create invitations",
        ));
    }
    let unavailable = |e: sqlx::Error| {
        ApiError::new(
            ApiErrorCode::ServiceUnavailable,
            "samgate's database is unavailable",
        )
        .with_detail(e)
    };
    let partner = crate::db::partners::find_by_tenant(&state.pool, tenant)
        .await
        .map_err(unavailable)?
        .filter(|p| p.status != "offboarded")
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::PartnerNotFound,
                "no partner has this tenant id",
            )
        })?;
    let (invitation, token) = onboarding::create_reconsent_invitation(
        &state.pool,
        partner.id,
        &Actor::ApiClient(principal.client_id),
        state.config.invitation_ttl,
        state.clock.now(),
    )
    .await
    .map_err(unavailable)?
    .ok_or_else(|| {
        ApiError::new(
            ApiErrorCode::PartnerNotFound,
            "no partner has this tenant id",
        )
    })?;
    Ok((
        StatusCode::CREATED,
        Json(ReconsentInvitation {
            url: onboarding::consent_link(&state.config.public_url, &token),
            expires_at: invitation.expires_at,
        }),
    ))
}
