//! The backend API: `/api/v1/…` with an API key (`Authorization: Bearer sgk_…`). The proxy routes
//! forward to Partner Center and Graph as a partner; the management routes describe partners.

mod customers;
mod docs;
mod offboard;
pub mod openapi;
mod partners;
mod proxy;
mod reconsent;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::handler::Handler;
use axum::http::Method;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, any, get, post};

use crate::api_keys::{KeyRejection, Principal};
use crate::app::AppState;
use crate::web::errors::{ApiError, ApiErrorCode};

/// The `/api` routes, built from [`routes`] only. Auth: every `/api/v1` handler takes an
/// [`ApiCaller`] (or [`ScopedPartner`]); the OpenAPI document and its page are public.
pub fn router() -> Router<AppState> {
    routes().into_iter().fold(Router::new(), |router, route| {
        router.route(route.path, route.service)
    })
}

/// The API's one route table: [`router`] serves it and [`openapi::document`] adds each route's
/// error responses from it; a test compares the served document with it, so a route added here
/// without its `#[utoipa::path]` fails.
pub fn routes() -> Vec<ApiRoute> {
    use ApiErrorCode::*;
    // Every `/api/v1` route: the key is checked first (and needs the database).
    const KEY: [ApiErrorCode; 2] = [InvalidApiKey, ServiceUnavailable];
    const PARTNER: [ApiErrorCode; 5] = [
        InvalidApiKey,
        ServiceUnavailable,
        BadRequest,
        ForbiddenPartner,
        PartnerNotFound,
    ];
    const PROXY: [ApiErrorCode; 15] = [
        InvalidApiKey,
        ServiceUnavailable,
        BadRequest,
        ForbiddenPartner,
        ForbiddenMethod,
        PartnerNotFound,
        ConsentRequired,
        MfaRequired,
        PartnerOffboarded,
        InvalidPath,
        PayloadTooLarge,
        RateLimited,
        UpstreamThrottled,
        UpstreamUnavailable,
        AppMisconfigured,
    ];
    vec![
        ApiRoute::get("/api/openapi.json", docs::show_openapi_document),
        ApiRoute::get("/api/docs", docs::show_api_docs),
        ApiRoute::get("/api/v1/partners", partners::list_partners)
            .answers(&[&KEY[..], &[BadRequest]].concat()),
        ApiRoute::get("/api/v1/partners/{partner_tid}", partners::show_partner).answers(&PARTNER),
        ApiRoute::post(
            "/api/v1/partners/{partner_tid}/offboard",
            offboard::offboard_partner,
        )
        .answers(
            &[
                &PARTNER[..],
                &[
                    ForbiddenMethod,
                    PartnerOffboarded,
                    ConsentRequired,
                    UpstreamUnavailable,
                ],
            ]
            .concat(),
        ),
        ApiRoute::get(
            "/api/v1/partners/{partner_tid}/customers",
            customers::list_customers,
        )
        .answers(&PARTNER),
        ApiRoute::post(
            "/api/v1/partners/{partner_tid}/customers/sync",
            customers::sync_customers,
        )
        .answers(&[&PARTNER[..], &[UpstreamUnavailable]].concat()),
        ApiRoute::post(
            "/api/v1/partners/{partner_tid}/reconsent-invitation",
            reconsent::create_reconsent_invitation,
        )
        .answers(&[&PARTNER[..], &[ForbiddenMethod]].concat()),
        ApiRoute::passthrough(
            "/api/v1/partners/{partner_tid}/partner-center/{*path}",
            proxy::proxy_partner_center,
        )
        .answers(&PROXY),
        ApiRoute::passthrough(
            "/api/v1/partners/{partner_tid}/graph/{*path}",
            proxy::proxy_partner_graph,
        )
        .answers(&PROXY),
        ApiRoute::passthrough(
            "/api/v1/partners/{partner_tid}/customers/{customer_tid}/graph/{*path}",
            proxy::proxy_customer_graph,
        )
        .answers(
            &[
                &PROXY[..],
                &[
                    CustomerNotFound,
                    CustomerAccessDenied,
                    CustomerConsentMissing,
                    CustomerPolicyBlocked,
                    CustomerUnavailable,
                ],
            ]
            .concat(),
        ),
    ]
}

/// One `/api` route: its path as axum matches it, the methods the document lists, the samgate
/// error codes it can answer, and its handler.
pub struct ApiRoute {
    /// The axum path template (`{*path}` for the proxy's wildcard).
    pub path: &'static str,
    /// The methods it answers (a passthrough answers every method; these are the documented ones).
    pub methods: &'static [Method],
    /// Whether any method is forwarded to Microsoft as it is.
    pub passthrough: bool,
    /// The samgate error codes it can answer with.
    pub errors: Vec<ApiErrorCode>,
    service: MethodRouter<AppState>,
}

impl ApiRoute {
    fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        const GET: &[Method] = &[Method::GET];
        Self::new(path, GET, false, get(handler))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        const POST: &[Method] = &[Method::POST];
        Self::new(path, POST, false, post(handler))
    }

    fn passthrough<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        const DOCUMENTED: &[Method] = &[
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ];
        Self::new(path, DOCUMENTED, true, any(handler))
    }

    fn new(
        path: &'static str,
        methods: &'static [Method],
        passthrough: bool,
        service: MethodRouter<AppState>,
    ) -> Self {
        Self {
            path,
            methods,
            passthrough,
            errors: Vec::new(),
            service,
        }
    }

    fn answers(mut self, errors: &[ApiErrorCode]) -> Self {
        self.errors = errors.to_vec();
        self
    }

    /// The path as OpenAPI writes it (`{path}` for axum's `{*path}`).
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

/// A backend service authenticated by its API key.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub std::sync::Arc<Principal>);

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
    pub principal: std::sync::Arc<Principal>,
    /// The partner.
    pub partner: std::sync::Arc<crate::partners::PartnerInfo>,
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
) -> Result<std::sync::Arc<crate::partners::PartnerInfo>, ApiError> {
    state
        .partners
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
