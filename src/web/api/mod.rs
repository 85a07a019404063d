//! The backend API: `/api/v1/…` with an API key (`Authorization: Bearer sgk_…`). The proxy routes
//! forward to Partner Center and Graph as a partner; the management routes describe partners.

mod customers;
mod docs;
mod offboard;
mod partners;
mod proxy;
mod reconsent;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{any, get, post};

use crate::api_keys::{KeyRejection, Principal};
use crate::app::AppState;
use crate::web::errors::{ApiError, ApiErrorCode};

/// The `/api` routes. Auth: every `/api/v1` handler takes an [`ApiCaller`]; the OpenAPI document
/// and its page are public.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(docs::show_openapi_document))
        .route("/api/docs", get(docs::show_api_docs))
        .route("/api/v1/partners", get(partners::list_partners))
        .route(
            "/api/v1/partners/{partner_tid}",
            get(partners::show_partner),
        )
        .route(
            "/api/v1/partners/{partner_tid}/offboard",
            post(offboard::offboard_partner),
        )
        .route(
            "/api/v1/partners/{partner_tid}/customers",
            get(customers::list_customers),
        )
        .route(
            "/api/v1/partners/{partner_tid}/customers/sync",
            post(customers::sync_customers),
        )
        .route(
            "/api/v1/partners/{partner_tid}/reconsent-invitation",
            post(reconsent::create_reconsent_invitation),
        )
        .route(
            "/api/v1/partners/{partner_tid}/partner-center/{*path}",
            any(proxy::proxy_partner_center),
        )
        .route(
            "/api/v1/partners/{partner_tid}/graph/{*path}",
            any(proxy::proxy_partner_graph),
        )
        .route(
            "/api/v1/partners/{partner_tid}/customers/{customer_tid}/graph/{*path}",
            any(proxy::proxy_customer_graph),
        )
}

/// A backend service authenticated by its API key.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub Principal);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorCode::InvalidApiKey,
                    "send your API key as `Authorization: Bearer sgk_…`",
                )
            })?;
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let presented = match header.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
            _ if header.trim().starts_with("sgk_") => {
                return Err(ApiError::new(
                    ApiErrorCode::InvalidApiKey,
                    "the Authorization header holds a key but no scheme: send \
                     `Authorization: Bearer sgk_…`",
                ));
            }
            _ => {
                return Err(ApiError::new(
                    ApiErrorCode::InvalidApiKey,
                    "send your API key as `Authorization: Bearer sgk_…`",
                ));
            }
        };
        let principal = state
            .api_keys
            .verify(presented, state.clock.now())
            .await
            .map_err(|rejection| match rejection {
                KeyRejection::Unavailable => ApiError::new(
                    ApiErrorCode::ServiceUnavailable,
                    "samgate cannot check API keys right now (database unavailable); retry shortly",
                )
                .with_retry_after(5),
                KeyRejection::Invalid => ApiError::new(
                    ApiErrorCode::InvalidApiKey,
                    "the API key is unknown, expired or revoked",
                ),
            })?;
        Ok(Self(principal))
    }
}

/// A backend acting for one partner: its key verified, the `{partner_tid}` of the path parsed,
/// the key's scope checked, and the partner looked up (cached). Handlers receive proven values.
#[derive(Debug, Clone)]
pub struct ScopedPartner {
    /// The caller.
    pub principal: Principal,
    /// The partner.
    pub partner: std::sync::Arc<crate::broker::PartnerInfo>,
}

/// The tenant id in `text` if `principal` may act for it: `bad_request` or `forbidden_partner`.
pub(crate) fn scoped_tenant(principal: &Principal, text: &str) -> Result<uuid::Uuid, ApiError> {
    let tenant = uuid::Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            ApiErrorCode::BadRequest,
            "the partner must be a tenant id (a GUID)",
        )
    })?;
    if !principal.allows_partner(tenant) {
        return Err(ApiError::new(
            ApiErrorCode::ForbiddenPartner,
            "this API client may not act for this partner",
        ));
    }
    Ok(tenant)
}

/// The partner with this tenant id (cached): `partner_not_found` when there is none.
pub(crate) async fn find_partner(
    state: &AppState,
    tenant: uuid::Uuid,
) -> Result<std::sync::Arc<crate::broker::PartnerInfo>, ApiError> {
    state
        .broker
        .partners()
        .by_tenant(tenant)
        .await
        .map_err(|e| {
            ApiError::new(
                ApiErrorCode::ServiceUnavailable,
                "samgate's database is unavailable",
            )
            .with_detail(e)
        })?
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::PartnerNotFound,
                "no partner has this tenant id",
            )
        })
}

impl FromRequestParts<AppState> for ScopedPartner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiCaller(principal) = ApiCaller::from_request_parts(parts, state).await?;
        let axum::extract::Path(params) = axum::extract::Path::<
            std::collections::HashMap<String, String>,
        >::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::new(ApiErrorCode::BadRequest, "malformed path"))?;
        let text = params.get("partner_tid").map(String::as_str).unwrap_or("");
        let tenant = scoped_tenant(&principal, text)?;
        let partner = find_partner(state, tenant).await?;
        Ok(Self { principal, partner })
    }
}
