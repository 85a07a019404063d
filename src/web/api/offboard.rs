//! `POST /api/v1/partners/{partner_tid}/offboard`: a read-write key scoped to the partner removes
//! it (optionally its app consents first); the answer lists what was removed.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::ApiCaller;
use crate::app::AppState;
use crate::broker::BrokerError;
use crate::domain::Actor;
use crate::lifecycle::{OffboardError, OffboardReport, offboard};
use crate::web::errors::{ApiError, ApiErrorCode};

/// The request body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffboardRequest {
    /// Remove the CPV app's consent from every customer through Partner Center first.
    #[serde(default)]
    remove_app_consents: bool,
}

/// Offboards the partner.
///
/// Optionally removes the CPV app's consent from every customer (through Partner Center) first,
/// then destroys the grant (crypto-shred), revokes pending invitations and audits it. Needs a
/// read-write key scoped to the partner. Afterwards the partner's calls answer 410
/// `partner_offboarded`.
#[utoipa::path(
    post,
    path = "/api/v1/partners/{partner_tid}/offboard",
    tag = "partners",
    params(("partner_tid" = uuid::Uuid, Path, description = "The partner's Microsoft tenant id.")),
    request_body = OffboardRequest,
    responses((status = 200, description = "Offboarded: what was removed.", body = OffboardReport))
)]
pub async fn offboard_partner(
    State(state): State<AppState>,
    ApiCaller(principal): ApiCaller,
    Path(partner_tid): Path<String>,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Json<OffboardReport>, ApiError> {
    let tenant = super::scoped_tenant(&principal, &partner_tid)?;
    if principal.read_only {
        return Err(ApiError::new(
            ApiErrorCode::ForbiddenMethod,
            "this API client is read-only: it cannot offboard partners",
        ));
    }
    let bad_body = || {
        ApiError::new(
            ApiErrorCode::BadRequest,
            "send a JSON object such as {\"remove_app_consents\": true}",
        )
    };
    // Read as an object first: serde also builds a struct from a JSON array (`[]` was accepted,
    // found by schemathesis).
    let Json(object) = body.map_err(|e| bad_body().with_detail(e))?;
    let request: OffboardRequest = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| bad_body().with_detail(e))?;
    let actor = Actor::ApiClient(principal.client_id);
    let report = offboard(&state, tenant, &actor, request.remove_app_consents)
        .await
        .map_err(|err| match err {
            OffboardError::NotFound => {
                ApiError::new(ApiErrorCode::PartnerNotFound, "no partner has this tenant id")
            }
            OffboardError::AlreadyOffboarded => ApiError::new(
                ApiErrorCode::PartnerOffboarded,
                "this partner is already offboarded",
            ),
            OffboardError::Token(
                token @ (BrokerError::ConsentRequired(_)
                | BrokerError::MfaRequired(_)
                | BrokerError::NoGrant),
            ) => ApiError::new(
                ApiErrorCode::ConsentRequired,
                "the partner's grant no longer works, so samgate cannot remove its app consents; \
                 offboard with remove_app_consents false and remove them in Partner Center",
            )
            .with_detail(token),
            err @ (OffboardError::Token(_) | OffboardError::PartnerCenter(_)) => ApiError::new(
                ApiErrorCode::UpstreamUnavailable,
                "Partner Center could not remove the app consents; nothing was removed, retry later",
            )
            .with_detail(err),
            err @ OffboardError::Database(_) => ApiError::new(
                ApiErrorCode::ServiceUnavailable,
                "samgate's database is unavailable",
            )
            .with_detail(err),
        })?;
    Ok(Json(report))
}
