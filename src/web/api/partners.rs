//! `GET /api/v1/partners` and `GET /api/v1/partners/{tid}`: what a backend needs to know about the
//! partners its key may act for.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::ApiCaller;
use crate::app::AppState;
use crate::db;
use crate::web::errors::{ApiError, ApiErrorCode};

/// A partner as the API shows it.
#[derive(Debug, Serialize)]
pub struct PartnerView {
    tenant_id: Uuid,
    name: String,
    domain: Option<String>,
    mpn_id: Option<String>,
    status: crate::domain::PartnerStatus,
    status_code: Option<String>,
    advice: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    status_changed_at: OffsetDateTime,
    consent: Option<ConsentView>,
}

/// The partner's consent and token health.
#[derive(Debug, Serialize)]
pub struct ConsentView {
    consented_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    consented_at: OffsetDateTime,
    mfa_evidence: String,
    app_id: Uuid,
    cloud: String,
    #[serde(with = "time::serde::rfc3339")]
    last_refresh_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    last_error_code: Option<String>,
}

/// One page of partners.
#[derive(Debug, Serialize)]
pub struct PartnerPage {
    partners: Vec<PartnerView>,
    /// Pass as `after` for the next page; absent on the last page.
    next_after: Option<Uuid>,
}

/// Paging of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    after: Option<Uuid>,
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

/// The partners this key may act for, ordered by tenant id, paged with `after`.
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
