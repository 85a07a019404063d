//! A Microsoft Graph subset under `/graph/v1.0/…` (so Graph's base URL is `{base_url}/graph`):
//! organization, users (`$top` + `@odata.nextLink`), GDAP relationships. The tenant is taken from
//! the token's `tid`; errors use Graph's `{"error":{"code","message","innerError"}}` shape.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::identity::tokens::{BearerClaims, GRAPH, GRAPH_APP_ID, TokenProblem, validate_bearer};
use crate::state::{Relationship, Shared, Tenant, World};

const CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata";

/// Routes of the Graph subset.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/graph/v1.0/organization", get(list_organization))
        .route("/graph/v1.0/users", get(list_users))
        .route(
            "/graph/v1.0/tenantRelationships/delegatedAdminRelationships",
            get(list_delegated_admin_relationships),
        )
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

fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<(BearerClaims, Tenant), GraphError> {
    let crid = client_request_id(headers);
    let claims = validate_bearer(shared, headers, &[GRAPH, GRAPH_APP_ID]).map_err(|p| {
        let message = match p {
            TokenProblem::Missing => "Access token is empty.",
            TokenProblem::Expired | TokenProblem::NotYetValid => "Lifetime validation failed, the token is expired.",
            TokenProblem::WrongAudience => "Access token validation failure. Invalid audience.",
            TokenProblem::Malformed => "IDX14100: JWT is not well formed.",
            TokenProblem::BadSignature | TokenProblem::WrongIssuer => "Access token validation failure.",
        };
        let mut err = new_graph_error(shared, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message, crid.as_deref());
        err.challenge = Some(format!(
            "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\"",
            shared.base_url
        ));
        err
    })?;
    let tenant = shared.world().tenants.get(&claims.tenant).cloned();
    let Some(tenant) = tenant else {
        return Err(new_graph_error(
            shared,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid tenant.",
            crid.as_deref(),
        ));
    };
    Ok((claims, tenant))
}

/// `$top` (default `default`, at most `max`) and an offset from `$skiptoken`/`$skipToken`.
fn paging(
    q: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<(usize, usize), String> {
    let top = match q.get("$top") {
        None => default,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and {max} inclusive."
                ));
            }
        },
    };
    let token = q.get("$skiptoken").or_else(|| q.get("$skipToken"));
    let offset = match token {
        None => 0,
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| "Invalid skip token.".to_owned())?,
    };
    Ok((top, offset))
}

fn skip_token(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

async fn list_organization(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (_, t) = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    axum::Json(json!({
        "@odata.context": format!("{CONTEXT}#organization"),
        "value": [{
            "id": t.id,
            "displayName": t.display_name,
            "tenantType": "AAD",
            "countryLetterCode": "US",
            "preferredLanguage": "en",
            "createdDateTime": t.created.format(&Rfc3339).unwrap_or_default(),
            "verifiedDomains": [{
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": true, "isInitial": true, "name": t.default_domain, "type": "Managed",
            }],
            "partnerTenantType": if t.is_partner { Value::from("resellerPartnerDelegatedAdmin") } else { Value::Null },
        }],
    }))
    .into_response()
}

async fn list_users(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (_, t) = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let (top, offset) = match paging(&q, 100, 999) {
        Ok(p) => p,
        Err(m) => {
            return graph_error(
                &shared,
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &m,
                client_request_id(&headers).as_deref(),
            );
        }
    };
    let world = shared.world();
    let users: Vec<_> = world.users.values().filter(|u| u.tenant == t.id).collect();
    let value: Vec<Value> = users
        .iter()
        .skip(offset)
        .take(top)
        .map(|u| {
            let mut parts = u.display_name.splitn(2, ' ');
            json!({
                "businessPhones": [],
                "displayName": u.display_name,
                "givenName": parts.next(),
                "surname": parts.next(),
                "jobTitle": Value::Null,
                "mail": u.upn,
                "mobilePhone": Value::Null,
                "officeLocation": Value::Null,
                "preferredLanguage": "en-US",
                "userPrincipalName": u.upn,
                "id": u.oid,
            })
        })
        .collect();
    let mut body = json!({ "@odata.context": format!("{CONTEXT}#users"), "value": value });
    if offset + top < users.len() {
        body["@odata.nextLink"] = Value::from(format!(
            "{}/graph/v1.0/users?$top={top}&$skiptoken={}",
            shared.base_url,
            skip_token(offset + top)
        ));
    }
    axum::Json(body).into_response()
}

async fn list_delegated_admin_relationships(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (_, t) = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let crid = client_request_id(&headers);
    if !t.is_partner {
        return graph_error(
            &shared,
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation. The tenant is not a partner tenant.",
            crid.as_deref(),
        );
    }
    let (top, offset) = match paging(&q, 300, 300) {
        Ok(p) => p,
        Err(m) => {
            return graph_error(
                &shared,
                StatusCode::BAD_REQUEST,
                "badRequest",
                &m,
                crid.as_deref(),
            );
        }
    };
    let now = shared.now();
    let world = shared.world();
    let mut total = 0;
    let mut value: Vec<Value> = Vec::with_capacity(top);
    for r in world.relationships.iter().filter(|r| r.partner == t.id) {
        if total >= offset && value.len() < top {
            value.push(relationship_json(&world, r, now));
        }
        total += 1;
    }
    let mut body = json!({
        "@odata.context": format!("{CONTEXT}#tenantRelationships/delegatedAdminRelationships"),
        "value": value,
    });
    if offset + top < total {
        body["@odata.nextLink"] = Value::from(format!(
            "{}/graph/v1.0/tenantRelationships/delegatedAdminRelationships?$top={top}&$skipToken={}",
            shared.base_url,
            skip_token(offset + top)
        ));
    }
    axum::Json(body).into_response()
}

/// One `delegatedAdminRelationship` as Graph v1.0 returns it.
fn relationship_json(world: &World, r: &Relationship, now: OffsetDateTime) -> Value {
    let time = |t: OffsetDateTime| Value::from(t.format(&Rfc3339).unwrap_or_default());
    let customer_name = world
        .tenants
        .get(&r.customer)
        .map(|c| c.display_name.clone())
        .unwrap_or_default();
    json!({
        "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
        "id": r.id,
        "displayName": r.display_name,
        "duration": r.duration,
        "customer": { "tenantId": r.customer, "displayName": customer_name },
        "accessDetails": {
            "unifiedRoles": r.roles.iter().map(|id| json!({ "roleDefinitionId": id })).collect::<Vec<_>>(),
        },
        "status": r.status_at(now).as_str(),
        "autoExtendDuration": "PT0S",
        "createdDateTime": time(r.created),
        "lastModifiedDateTime": time(r.last_modified),
        "activatedDateTime": r.activated.map_or(Value::Null, time),
        "endDateTime": r.end_date_time().map_or(Value::Null, time),
    })
}

async fn show_userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (claims, _) = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let user = claims
        .oid()
        .and_then(|oid| shared.world().users.get(&oid).cloned());
    let Some(user) = user else {
        return graph_error(
            &shared,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "A user token is required.",
            None,
        );
    };
    axum::Json(json!({
        "sub": claims.str("sub"),
        "name": user.display_name,
        "email": user.upn,
    }))
    .into_response()
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
