//! `GET /api/v1/partners/{tid}/customers` (the customer directory, paged and filtered) and
//! `POST /api/v1/partners/{tid}/customers/sync` (read it again now).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ScopedPartner;
use crate::app::AppState;
use crate::customers::SyncError;
use crate::db;
use crate::db::customers::{CustomerCounts, CustomerFilter, CustomerRow};
use crate::domain::{Actor, ConsentState, CustomerRelationship, TokenOutcome};
use crate::web::errors::{ApiError, ApiErrorCode};

/// One customer as the API shows it: what samgate knows of the partner's access to it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerView {
    /// The customer's Microsoft tenant id.
    tenant_id: Uuid,
    /// Its company name.
    name: String,
    /// Its default domain.
    domain: String,
    /// Listed by Partner Center at the last sync.
    listed: bool,
    relationship: CustomerRelationship,
    /// The Entra role template ids of the partner's active GDAP relationships.
    gdap_roles: Vec<Uuid>,
    /// When the last active GDAP relationship ends.
    #[serde(with = "time::serde::rfc3339::option")]
    gdap_ends_at: Option<OffsetDateTime>,
    app_consent: ConsentState,
    token: TokenView,
    /// When it stopped being a customer (null: it still is).
    #[serde(with = "time::serde::rfc3339::option")]
    removed_at: Option<OffsetDateTime>,
}

/// The last token outcome at the customer's authority.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CustomerToken)]
pub struct TokenView {
    outcome: TokenOutcome,
    /// samgate's error code of a refusal (`customer_policy_blocked`, …).
    error: Option<String>,
    /// Microsoft's AADSTS code.
    aadsts: Option<String>,
    /// What to do about a refusal, for a person.
    advice: Option<String>,
    /// When samgate last asked.
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
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerPage {
    customers: Vec<CustomerView>,
    /// Pass as `after` for the next page; null on the last page.
    next_after: Option<Uuid>,
    counts: CustomerCounts,
    /// When the directory was last read completely (null: never).
    #[serde(with = "time::serde::rfc3339::option")]
    synced_at: Option<OffsetDateTime>,
    /// Whether samgate could read the partner's GDAP relationships at the last sync.
    gdap_readable: Option<bool>,
}

/// Filter and paging of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the customers in this state (default `all`: every current customer).
    state: Option<CustomerFilter>,
    /// Part of the name, domain or tenant id (case-insensitive).
    search: Option<String>,
    /// `next_after` of the previous page; an id that names no customer of this partner is
    /// refused (400 `bad_request`).
    after: Option<Uuid>,
    /// Customers per page.
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<i64>,
}

/// The answer of a sync request.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerSync {
    status: SyncStatus,
    /// What the sync found (only when `synced`).
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<crate::customers::SyncReport>,
}

/// Whether this request synced the directory or found a sync running.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Synced now; `report` says what changed.
    Synced,
    /// Another sync of this partner is running; its result shows in the list when it ends.
    Running,
}

fn database(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ApiErrorCode::ServiceUnavailable,
        "samgate's database is unavailable",
    )
    .with_detail(e)
    .with_retry_after(5)
}

/// The partner's customers, from samgate's customer directory.
///
/// Partner Center's customers and the partner's GDAP relationships, ordered by name, each with its
/// relationship, the CPV app's consent there and the last token outcome at its authority; with
/// the directory's counts. `?state=needs_attention` lists what blocks access.
#[utoipa::path(
    get,
    path = "/api/v1/partners/{partner_tid}/customers",
    tag = "customers",
    params(
        ("partner_tid" = Uuid, Path, description = "The partner's Microsoft tenant id."),
        ListQuery
    ),
    responses((status = 200, description = "A page of customers.", body = CustomerPage))
)]
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
                .ok_or_else(|| {
                    ApiError::new(
                        ApiErrorCode::BadRequest,
                        "`after` names no customer of this partner: pass the `next_after` of the \
                         previous page",
                    )
                })?,
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

/// Reads the partner's customers and GDAP relationships from Microsoft again, now.
///
/// Every page of Partner Center's customers and the partner's GDAP relationships (Graph); changes
/// are audited and announced as `customer.access_changed` webhooks. samgate also syncs every 6
/// hours and when the proxy meets an unknown customer.
#[utoipa::path(
    post,
    path = "/api/v1/partners/{partner_tid}/customers/sync",
    tag = "customers",
    params(("partner_tid" = Uuid, Path, description = "The partner's Microsoft tenant id.")),
    responses(
        (status = 200, description = "Synced: `status` is `synced`, `report` says what changed.", body = CustomerSync),
        (status = 202, description = "Another sync of this partner is running: `status` is `running`.", body = CustomerSync)
    )
)]
pub async fn sync_customers(
    State(state): State<AppState>,
    scoped: ScopedPartner,
) -> Result<Response, ApiError> {
    let actor = Actor::ApiClient(scoped.principal.client_id);
    match crate::customers::sync(&state, &scoped.partner, &actor).await {
        Ok(report) => Ok((
            StatusCode::OK,
            Json(CustomerSync {
                status: SyncStatus::Synced,
                report: Some(report),
            }),
        )
            .into_response()),
        Err(SyncError::Busy) => Ok((
            StatusCode::ACCEPTED,
            Json(CustomerSync {
                status: SyncStatus::Running,
                report: None,
            }),
        )
            .into_response()),
        Err(SyncError::Database(e)) => Err(database(e)),
        Err(err) => Err(ApiError::new(
            ApiErrorCode::UpstreamUnavailable,
            format!("the customer directory could not be read from Microsoft: {err}"),
        )),
    }
}
