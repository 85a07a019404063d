//! A Microsoft Graph subset under `/graph/v1.0/…` (so Graph's base URL is `{base_url}/graph`):
//! organization, domains, subscribed SKUs, users, groups and members with OData query options,
//! GDAP relationships. The tenant is always the token's `tid`, so a token sees its own tenant's
//! directory only; errors use Graph's `{"error":{"code","message","innerError"}}` shape.

mod directory;
mod filter;
mod odata;
mod organization;
mod relationships;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::identity::tokens::{BearerClaims, GRAPH, GRAPH_APP_ID, TokenProblem, validate_bearer};
use crate::state::{Shared, Tenant};

/// Prefix of every `@odata.context`.
const CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata";

/// Routes of the Graph subset.
pub fn router() -> Router<Arc<Shared>> {
    let routes: [(&str, MethodRouter<Arc<Shared>>); 11] = [
        ("organization", get(organization::list_organization)),
        ("domains", get(organization::list_domains)),
        ("subscribedSkus", get(organization::list_subscribed_skus)),
        ("users", get(directory::list_users)),
        ("users/$count", get(directory::count_users)),
        ("users/{id}", get(directory::show_user)),
        ("groups", get(directory::list_groups)),
        ("groups/$count", get(directory::count_groups)),
        ("groups/{id}", get(directory::show_group)),
        ("groups/{id}/members", get(directory::list_group_members)),
        (
            "tenantRelationships/delegatedAdminRelationships",
            get(relationships::list_delegated_admin_relationships),
        ),
    ];
    let mut router = Router::new();
    for (path, handler) in routes {
        // The Python SDK (kiota-http ≥ 1.9.4) takes its base URL from the httpx client, which
        // ends in `/`, so it asks for `…/v1.0//users`. UNCONFIRMED: Graph answers those as
        // `…/v1.0/users` (inferred from the SDK working against Graph).
        router = router
            .route(&format!("/graph/v1.0/{path}"), handler.clone())
            .route(&format!("/graph/v1.0//{path}"), handler);
    }
    router
        .route("/graph/oidc/userinfo", get(show_userinfo))
        .route(
            "/graph/{*rest}",
            get(not_found)
                .post(not_found)
                .patch(not_found)
                .delete(not_found),
        )
        .layer(middleware::from_fn(request_ids))
}

fn client_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Graph's `request-id`/`client-request-id` response headers.
async fn request_ids(req: Request, next: Next) -> Response {
    let client = client_request_id(req.headers());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let request_id = h.get("request-id").cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("0"))
    });
    h.insert("request-id", request_id.clone());
    let client_value = client
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .unwrap_or(request_id);
    h.insert("client-request-id", client_value);
    h.insert(
        "x-ms-ags-diagnostic",
        HeaderValue::from_static(r#"{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"ms-emulator"}}"#),
    );
    resp
}

/// A Graph error, rendered as `{"error":{"code","message","innerError"}}`.
pub struct GraphError {
    status: StatusCode,
    body: Value,
    request_id: String,
    challenge: Option<String>,
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            resp.headers_mut().insert("request-id", v);
        }
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

/// Graph's error response.
pub fn graph_error(
    shared: &Shared,
    status: StatusCode,
    code: &str,
    message: &str,
    client_request_id: Option<&str>,
) -> Response {
    new_graph_error(shared, status, code, message, client_request_id).into_response()
}

fn new_graph_error(
    shared: &Shared,
    status: StatusCode,
    code: &str,
    message: &str,
    client_request_id: Option<&str>,
) -> GraphError {
    let request_id = Uuid::new_v4().to_string();
    let date = shared
        .now()
        .replace_nanosecond(0)
        .unwrap_or(shared.now())
        .format(&Rfc3339)
        .unwrap_or_default();
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": date,
                "request-id": request_id,
                "client-request-id": client_request_id.unwrap_or(&request_id),
            },
        },
    });
    GraphError {
        status,
        body,
        request_id,
        challenge: None,
    }
}

/// One Graph request as a handler sees it: the shared state and the request headers.
struct GraphRequest<'a> {
    shared: &'a Shared,
    headers: &'a HeaderMap,
}

impl<'a> GraphRequest<'a> {
    fn new(shared: &'a Shared, headers: &'a HeaderMap) -> GraphRequest<'a> {
        GraphRequest { shared, headers }
    }

    /// An error answer carrying this request's `client-request-id`.
    fn error(&self, status: StatusCode, code: &str, message: &str) -> GraphError {
        let crid = client_request_id(self.headers);
        new_graph_error(self.shared, status, code, message, crid.as_deref())
    }

    /// Graph's 404 for an id that names nothing in the caller's tenant.
    fn not_found(&self, id: &str) -> GraphError {
        self.error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// Whether the request carries `ConsistencyLevel: eventual` (advanced queries).
    fn eventual(&self) -> bool {
        self.headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
    }

    /// Validates the bearer token (Graph audience, signature, issuer, expiry) and returns its
    /// claims with the token's tenant.
    fn authenticate(&self) -> Result<(BearerClaims, Tenant), GraphError> {
        let shared = self.shared;
        let claims = validate_bearer(shared, self.headers, &[GRAPH, GRAPH_APP_ID]).map_err(|p| {
            let message = match p {
                TokenProblem::Missing => "Access token is empty.",
                TokenProblem::Expired | TokenProblem::NotYetValid => {
                    "Lifetime validation failed, the token is expired."
                }
                TokenProblem::WrongAudience => "Access token validation failure. Invalid audience.",
                TokenProblem::Malformed => "IDX14100: JWT is not well formed.",
                TokenProblem::BadSignature | TokenProblem::WrongIssuer => {
                    "Access token validation failure."
                }
            };
            let mut err = self.error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                message,
            );
            err.challenge = Some(format!(
                "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\"",
                shared.base_url
            ));
            err
        })?;
        let tenant = shared.world().tenants.get(&claims.tenant).cloned();
        let Some(tenant) = tenant else {
            return Err(self.error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid tenant.",
            ));
        };
        Ok((claims, tenant))
    }
}

/// Renders a handler's outcome, success or Graph error.
fn respond(outcome: Result<Response, GraphError>) -> Response {
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn show_userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (claims, _) = req.authenticate()?;
        let user = claims
            .oid()
            .and_then(|oid| shared.world().users.get(&oid).cloned());
        let Some(user) = user else {
            return Err(req.error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "A user token is required.",
            ));
        };
        Ok(axum::Json(json!({
            "sub": claims.str("sub"),
            "name": user.display_name,
            "email": user.upn,
        }))
        .into_response())
    })())
}

async fn not_found(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let segment = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    graph_error(
        &shared,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("Resource not found for the segment '{segment}'."),
        client_request_id(req.headers()).as_deref(),
    )
}
