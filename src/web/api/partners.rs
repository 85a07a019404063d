//! `GET /api/v1/partners` and `GET /api/v1/partners/{tid}`: what a backend needs to know about the
//! partners its key may act for.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiCaller;
use crate::app::AppState;
use crate::db;
use crate::web::errors::{ApiError, ApiErrorCode};

/// A partner as the API shows it: who it is, where it stands and what to do about it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Partner)]
pub struct PartnerView {
    /// The partner's Microsoft tenant id.
    tenant_id: Uuid,
    /// The organisation's name in Partner Center.
    name: String,
    /// Its default domain.
    domain: Option<String>,
    /// Its MPN (Partner) id.
    mpn_id: Option<String>,
    status: crate::domain::PartnerStatus,
    /// The Microsoft (AADSTS) code behind the status.
    status_code: Option<String>,
    /// What to do about the status, for a person.
    advice: Option<String>,
    /// When the status last changed.
    #[serde(with = "time::serde::rfc3339")]
    status_changed_at: OffsetDateTime,
    /// The consent; null while the partner has none (pending or offboarded).
    consent: Option<ConsentView>,
}

/// The partner's consent and token health.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Consent)]
pub struct ConsentView {
    /// Who consented (user principal name).
    consented_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    consented_at: OffsetDateTime,
    /// How MFA was proven at consent (the ID token's `amr`).
    mfa_evidence: String,
    /// The CPV app the partner consented to.
    app_id: Uuid,
    /// The Microsoft cloud.
    cloud: String,
    /// When the refresh token was last redeemed.
    #[serde(with = "time::serde::rfc3339")]
    last_refresh_at: OffsetDateTime,
    /// When a call last used the grant.
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    /// The last error of a refresh, if it failed.
    last_error_code: Option<String>,
}

/// One page of partners.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerPage {
    partners: Vec<PartnerView>,
    /// Pass as `after` for the next page; null on the last page.
    next_after: Option<Uuid>,
}

/// Paging of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `next_after` of the previous page.
    after: Option<Uuid>,
    /// Partners per page.
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<i64>,
}

fn view(row: db::partners::PartnerWithGrant) -> PartnerView {
    let consent = row.consented_at.map(|consented_at| ConsentView {
        consented_by: row.consented_by_upn.clone(),
        consented_at,
        mfa_evidence: row.mfa_evidence.clone().unwrap_or_default(),
        app_id: row.app_id.unwrap_or_default(),
        cloud: row.cloud.clone().unwrap_or_default(),
        last_refresh_at: row.refreshed_at.unwrap_or(consented_at),
        last_used_at: row.last_used_at,
        last_error_code: row.last_error_code.clone(),
    });
    PartnerView {
        tenant_id: row.tenant_id,
        name: row.display_name,
        domain: row.domain,
        mpn_id: row.mpn_id,
        status: row.status,
        status_code: row.status_code,
        advice: row.status_reason,
        status_changed_at: row.status_changed_at,
        consent,
    }
}

/// The partners this key may act for.
///
/// Ordered by tenant id, with each partner's status, the advice for it and its consent's health;
/// page with `after` = the previous page's `next_after`.
#[utoipa::path(
    get,
    path = "/api/v1/partners",
    tag = "partners",
    params(ListQuery),
    responses((status = 200, description = "A page of partners.", body = PartnerPage))
)]
pub async fn list_partners(
    State(state): State<AppState>,
    ApiCaller(principal): ApiCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PartnerPage>, ApiError> {
    // Refused as JSON with a stable code (axum's own rejection is plain text), and the documented
    // range is enforced rather than silently clamped (found by schemathesis, docs/SECURITY.md).
    let bad_query = || {
        ApiError::new(
            ApiErrorCode::BadRequest,
            "`after` must be a tenant id (a GUID) and `limit` an integer from 1 to 500",
        )
    };
    let Query(query) = query.map_err(|_| bad_query())?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query());
    }
    let only = match &principal.scope {
        crate::api_keys::PartnerScope::All => None,
        crate::api_keys::PartnerScope::Only(set) => Some(set.iter().copied().collect::<Vec<_>>()),
    };
    let rows = db::partners::list_with_grants(&state.pool, only.as_deref(), query.after, limit + 1)
        .await
        .map_err(|e| {
            ApiError::new(
                ApiErrorCode::ServiceUnavailable,
                "samgate's database is unavailable",
            )
            .with_detail(e)
        })?;
    let more = rows.len() as i64 > limit;
    let mut partners: Vec<PartnerView> = rows.into_iter().take(limit as usize).map(view).collect();
    let next_after = if more {
        partners.last().map(|p| p.tenant_id)
    } else {
        None
    };
    partners.truncate(limit as usize);
    Ok(Json(PartnerPage {
        partners,
        next_after,
    }))
}

/// One partner this key may act for.
///
/// Its status (`healthy`, `degraded`, `needs_consent`, `mfa_required`, `pending`, `offboarded`),
/// the advice for it and its consent's health.
#[utoipa::path(
    get,
    path = "/api/v1/partners/{partner_tid}",
    tag = "partners",
    params(("partner_tid" = Uuid, Path, description = "The partner's Microsoft tenant id.")),
    responses((status = 200, description = "The partner.", body = PartnerView))
)]
pub async fn show_partner(
    State(state): State<AppState>,
    ApiCaller(principal): ApiCaller,
    Path(partner_tid): Path<String>,
) -> Result<Json<PartnerView>, ApiError> {
    let tenant = super::scoped_tenant(&principal, &partner_tid)?;
    let rows = db::partners::list_with_grants(&state.pool, Some(&[tenant]), None, 1)
        .await
        .map_err(|e| {
            ApiError::new(
                ApiErrorCode::ServiceUnavailable,
                "samgate's database is unavailable",
            )
            .with_detail(e)
        })?;
    rows.into_iter()
        .next()
        .map(|row| Json(view(row)))
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::PartnerNotFound,
                "no partner has this tenant id",
            )
        })
}
