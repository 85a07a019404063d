//! `GET /api/v1/partners/{tid}/customers` (the customer directory, paged and filtered) and
//! `POST /api/v1/partners/{tid}/customers/sync` (read it again now).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::ScopedPartner;
use crate::app::AppState;
use crate::customers::SyncError;
use crate::db;
use crate::db::customers::{CustomerCounts, CustomerFilter, CustomerRow};
use crate::domain::{ConsentState, CustomerRelationship, TokenOutcome};
use crate::web::errors::{ApiError, ApiErrorCode};

/// One customer as the API shows it.
#[derive(Debug, Serialize)]
pub struct CustomerView {
    tenant_id: Uuid,
    name: String,
    domain: String,
    /// Listed by Partner Center at the last sync.
    listed: bool,
    relationship: CustomerRelationship,
    gdap_roles: Vec<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    gdap_ends_at: Option<OffsetDateTime>,
    app_consent: ConsentState,
    token: TokenView,
    #[serde(with = "time::serde::rfc3339::option")]
    removed_at: Option<OffsetDateTime>,
}

/// The last token outcome at the customer's authority.
#[derive(Debug, Serialize)]
pub struct TokenView {
    outcome: TokenOutcome,
    /// samgate's error code of a refusal (`customer_policy_blocked`, …).
    error: Option<String>,
    /// Microsoft's AADSTS code.
    aadsts: Option<String>,
    advice: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    checked_at: Option<OffsetDateTime>,
}

fn view(row: CustomerRow) -> CustomerView {
    CustomerView {
        tenant_id: row.tenant_id,
        name: row.company_name,
        domain: row.domain,
        listed: row.listed,
        relationship: row.relationship,
        gdap_roles: row.gdap_roles,
        gdap_ends_at: row.gdap_ends_at,
        app_consent: row.consent,
        token: TokenView {
            outcome: row.token_outcome,
            error: row.token_error,
            aadsts: row.token_code,
            advice: row.token_advice,
            checked_at: row.token_checked_at,
        },
        removed_at: row.removed_at,
    }
}

/// A page of customers with the directory's counts.
#[derive(Debug, Serialize)]
pub struct CustomerPage {
    customers: Vec<CustomerView>,
    /// Pass as `after` for the next page; absent on the last page.
    next_after: Option<Uuid>,
    counts: CustomerCounts,
    /// When the directory was last read completely (null: never).
    #[serde(with = "time::serde::rfc3339::option")]
    synced_at: Option<OffsetDateTime>,
    /// Whether samgate could read the partner's GDAP relationships at the last sync.
    gdap_readable: Option<bool>,
}

/// Filter and paging of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<CustomerFilter>,
    search: Option<String>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

fn database(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ApiErrorCode::ServiceUnavailable,
        "samgate's database is unavailable",
    )
    .with_detail(e)
    .with_retry_after(5)
}

/// The partner's customers ordered by name, with their access facts.
pub async fn list_customers(
    State(state): State<AppState>,
    scoped: ScopedPartner,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CustomerPage>, ApiError> {
    let bad_query = || {
        ApiError::new(
            ApiErrorCode::BadRequest,
            "`state` must be one of all, needs_attention, gdap_active, no_gdap, consent_missing, \
             consent_stale, token_refused, removed; `after` a customer tenant id; `limit` 1 to 500",
        )
    };
    let Query(query) = query.map_err(|_| bad_query())?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad_query());
    }
    let partner = &scoped.partner;
    let after = match query.after {
        None => None,
        Some(id) => Some(
            db::customers::find(&state.pool, partner.id, id)
                .await
                .map_err(database)?
                .map(|row| (row.company_name, row.tenant_id))
                .ok_or_else(bad_query)?,
        ),
    };
    let mut rows = db::customers::list(
        &state.pool,
        partner.id,
        query.state.unwrap_or(CustomerFilter::All),
        query.search.as_deref(),
        after.as_ref().map(|(name, id)| (name.as_str(), *id)),
        limit + 1,
    )
    .await
    .map_err(database)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_after = if more {
        rows.last().map(|r| r.tenant_id)
    } else {
        None
    };
    let counts = db::customers::counts(&state.pool, partner.id)
        .await
        .map_err(database)?;
    let sync = db::customers::sync_state(&state.pool, partner.id)
        .await
        .map_err(database)?;
    Ok(Json(CustomerPage {
        customers: rows.into_iter().map(view).collect(),
        next_after,
        counts,
        synced_at: sync.as_ref().and_then(|s| s.customers_synced_at),
        gdap_readable: sync.and_then(|s| s.customers_gdap_readable),
    }))
}

/// Reads the partner's customers and GDAP relationships again now.
pub async fn sync_customers(
    State(state): State<AppState>,
    scoped: ScopedPartner,
) -> Result<Response, ApiError> {
    let actor = format!("api-client:{}", scoped.principal.client_id);
    match crate::customers::sync(&state, &scoped.partner, &actor).await {
        Ok(report) => Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "status": "synced", "report": report })),
        )
            .into_response()),
        Err(SyncError::Busy) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "status": "running" })),
        )
            .into_response()),
        Err(SyncError::Database(e)) => Err(database(e)),
        Err(err) => Err(ApiError::new(
            ApiErrorCode::UpstreamUnavailable,
            format!("the customer directory could not be read from Microsoft: {err}"),
        )),
    }
}
