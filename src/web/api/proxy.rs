//! The proxy handlers: scope checks, partner state, path normalisation, then the proxy engine;
//! the answer streams back with Microsoft's status and headers, marked `x-samgate-upstream`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use uuid::Uuid;

use super::ApiCaller;
use crate::app::AppState;
use crate::broker::BrokerError;
use crate::customers::Gate;
use crate::domain::CustomerRelationship;
use crate::health::customer::CustomerProblem;
use crate::partners::PartnerInfo;
use crate::proxy::headers::{MS_CORRELATION_ID, MS_REQUEST_ID};
use crate::proxy::links::LinkTarget;
use crate::proxy::{Call, CallRecord, Proxied, ProxyError, Upstream};
use crate::web::errors::{ApiError, ApiErrorCode, ErrorShape};

/// Seconds the caller is willing to wait in all, e.g. for a throttled upstream to recover.
const DEADLINE_HEADER: &str = "x-samgate-deadline";
/// Marks every proxied answer (and so every error that came from Microsoft) with its upstream.
const UPSTREAM_HEADER: &str = "x-samgate-upstream";

const PARTNER_CENTER_PATH: &str = "Partner Center's path after its host, starting with the API \
    version: `v1/customers`, `v1/customers/{id}/subscriptions`. It may hold slashes (the route \
    matches the rest of the URL); `.`/`..` segments, encoded slashes or dots and backslashes are \
    refused (`invalid_path`). The query string is forwarded as it is.";
const GRAPH_PATH: &str = "Graph's path after its host, starting with the API version: \
    `v1.0/users`, `beta/…`. It may hold slashes (the route matches the rest of the URL); `.`/`..` \
    segments, encoded slashes or dots and backslashes are refused (`invalid_path`). The query \
    string (`$select`, `$top`, `$filter`…) is forwarded as it is.";
const PASSTHROUGH_BODY: &str = "Any body, in any content type: forwarded to Microsoft as it is \
    (streamed when large or chunked, up to `SAMGATE_PROXY_MAX_BODY_BYTES`). Partner Center and \
    Graph take JSON.";

/// The request headers samgate reads on the proxy routes (every other header, except
/// credentials, cookies, `X-Forwarded-*` and hop-by-hop ones, is forwarded too).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "a description of headers, read from the request as they come"
)]
struct ProxyHeaders {
    /// Seconds you are willing to wait in all (default 10; more than 300 counts as 300): samgate
    /// waits out Microsoft's `Retry-After` only within it, and answers 429 `upstream_throttled`
    /// otherwise. A value that is not whole seconds is refused (400 `bad_request`).
    #[param(rename = "X-Samgate-Deadline", required = false, minimum = 0)]
    deadline: u64,
    /// Idempotency key, kept on samgate's retries and set when absent; a write that carries it
    /// may be retried by samgate. Call records keep it when it has at most 128 characters.
    #[param(rename = "MS-RequestId", required = false)]
    request_id: String,
    /// Tracing id, passed to Microsoft and returned; set when absent. Call records keep it when
    /// it has at most 128 characters.
    #[param(rename = "MS-CorrelationId", required = false)]
    correlation_id: String,
}

/// Microsoft's answer, passed through.
#[derive(utoipa::ToResponse)]
#[response(
    description = "Microsoft's answer, passed through: its status, body and headers (`MS-RequestId`, `MS-CorrelationId`, `Retry-After`…), marked `x-samgate-upstream`. Paging links in JSON answers that point into Microsoft point at samgate instead.",
    headers(
        ("x-samgate-upstream" = String, description = "`partner-center` or `graph`: the answer came from Microsoft."),
        ("MS-RequestId" = String, description = "Yours, or the one samgate set."),
        ("MS-CorrelationId" = String, description = "Yours, or the one samgate set.")
    )
)]
pub(super) struct Passthrough;

/// Partner Center as the partner.
///
/// Any method is forwarded to Partner Center's `/{path}` with an access token of the partner, and
/// Microsoft's answer comes back as it is. To page a collection, follow its `links.next.uri` (an
/// absolute samgate URL) and send the link's `MS-ContinuationToken` header.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/v1/partners/{partner_tid}/partner-center/{path}",
    tag = "proxy",
    params(
        ("partner_tid" = uuid::Uuid, Path, description = "The partner's Microsoft tenant id."),
        ("path" = String, Path, description = PARTNER_CENTER_PATH),
        ProxyHeaders
    ),
    request_body(content = serde_json::Value, description = PASSTHROUGH_BODY),
    responses((status = "default", response = Passthrough))
)]
pub async fn proxy_partner_center(
    State(state): State<AppState>,
    caller: Result<ApiCaller, ApiError>,
    Path((partner_tid, _)): Path<(String, String)>,
    request: Request,
) -> Response {
    let target = Target {
        upstream: Upstream::PartnerCenter,
        partner_tid,
        customer_tid: None,
    };
    proxy(state, caller, target, request).await
}

/// Microsoft Graph in the partner's own tenant.
///
/// Any method is forwarded to Graph's `/{path}` with an access token of the partner in its own
/// tenant (e.g. `v1.0/users`, `v1.0/tenantRelationships/delegatedAdminRelationships`). Follow
/// `@odata.nextLink` as it is: it points at this route.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/v1/partners/{partner_tid}/graph/{path}",
    tag = "proxy",
    params(
        ("partner_tid" = uuid::Uuid, Path, description = "The partner's Microsoft tenant id."),
        ("path" = String, Path, description = GRAPH_PATH),
        ProxyHeaders
    ),
    request_body(content = serde_json::Value, description = PASSTHROUGH_BODY),
    responses((status = "default", response = Passthrough))
)]
pub async fn proxy_partner_graph(
    State(state): State<AppState>,
    caller: Result<ApiCaller, ApiError>,
    Path((partner_tid, _)): Path<(String, String)>,
    request: Request,
) -> Response {
    let target = Target {
        upstream: Upstream::Graph,
        partner_tid,
        customer_tid: None,
    };
    proxy(state, caller, target, request).await
}

/// Microsoft Graph in a customer tenant of the partner.
///
/// Any method is forwarded to Graph's `/{path}` in the customer's tenant, with a token minted from
/// the partner's consent at the customer's authority (GDAP). samgate checks the customer against
/// its customer directory first, so an unknown customer (`customer_not_found`) or one without an
/// active GDAP relationship (`customer_access_denied`) costs no token call. What Microsoft refuses
/// in the customer's tenant (`customer_consent_missing`, `customer_policy_blocked`,
/// `customer_access_denied`, `customer_unavailable`) is remembered for 5 minutes, answered with
/// `Retry-After`, and never changes the partner's status.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/v1/partners/{partner_tid}/customers/{customer_tid}/graph/{path}",
    tag = "proxy",
    params(
        ("partner_tid" = uuid::Uuid, Path, description = "The partner's Microsoft tenant id."),
        ("customer_tid" = uuid::Uuid, Path, description = "A customer tenant id of that partner."),
        ("path" = String, Path, description = GRAPH_PATH),
        ProxyHeaders
    ),
    request_body(content = serde_json::Value, description = PASSTHROUGH_BODY),
    responses((status = "default", response = Passthrough))
)]
pub async fn proxy_customer_graph(
    State(state): State<AppState>,
    caller: Result<ApiCaller, ApiError>,
    Path((partner_tid, customer_tid, _)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let target = Target {
        upstream: Upstream::Graph,
        partner_tid,
        customer_tid: Some(customer_tid),
    };
    proxy(state, caller, target, request).await
}

/// What the route names: the upstream and the tenants of the path, as the caller wrote them.
struct Target {
    upstream: Upstream,
    partner_tid: String,
    customer_tid: Option<String>,
}

/// The call, proven: who calls, for which partner and customer, within which budget.
struct Admitted {
    principal: std::sync::Arc<crate::api_keys::Principal>,
    partner: std::sync::Arc<PartnerInfo>,
    customer: Option<Uuid>,
    budget: Duration,
}

fn parse_tenant(text: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            ApiErrorCode::BadRequest,
            format!("{what} must be a tenant id (a GUID)"),
        )
    })
}

/// The route's template as the router matched it, and where the upstream path (`{*path}`) begins
/// in the request's path.
fn matched_route(request: &Request) -> Result<(std::sync::Arc<str>, usize), ApiError> {
    let missing = || {
        ApiError::new(
            ApiErrorCode::Internal,
            "the proxy was reached without a matched route",
        )
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .ok_or_else(missing)?
        .as_str();
    // The upstream path begins after as many slashes of the request's path as the template has
    // before `{*path}` (path parameters hold no slash).
    let wildcard = route.find("/{*").ok_or_else(missing)?;
    let slashes = route.as_bytes()[..=wildcard]
        .iter()
        .filter(|&&b| b == b'/')
        .count();
    let path = request.uri().path();
    let rest_at = memchr::memchr_iter(b'/', path.as_bytes())
        .nth(slashes - 1)
        .map_or(path.len(), |at| at + 1);
    Ok((std::sync::Arc::from(route), rest_at))
}

/// The key's scope, the tenant ids, the deadline and the read-only rule, then the partner
/// (cached). A call refused here names no partner and is not recorded.
async fn admit(
    state: &AppState,
    caller: Result<ApiCaller, ApiError>,
    target: &Target,
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
) -> Result<Admitted, ApiError> {
    let ApiCaller(principal) = caller?;
    let partner_tenant = super::scoped_tenant(&principal, &target.partner_tid)?;
    let customer = target
        .customer_tid
        .as_deref()
        .map(|c| parse_tenant(c, "the customer"))
        .transpose()?;
    let budget = deadline(headers, state.proxy.settings().default_budget)?;
    if !principal.allows_method(method) {
        return Err(ApiError::new(
            ApiErrorCode::ForbiddenMethod,
            "this API client is read-only: only GET, HEAD and OPTIONS are allowed",
        ));
    }
    let partner = super::find_partner(state, partner_tenant).await?;
    Ok(Admitted {
        principal,
        partner,
        customer,
        budget,
    })
}

async fn proxy(
    state: AppState,
    caller: Result<ApiCaller, ApiError>,
    target: Target,
    request: Request,
) -> Response {
    let upstream = target.upstream;
    let shape = match upstream {
        Upstream::Graph => ErrorShape::Graph,
        Upstream::PartnerCenter => ErrorShape::PartnerCenter,
    };
    let started = Instant::now();
    let admitted = match matched_route(&request) {
        Ok(route) => admit(&state, caller, &target, request.method(), request.headers())
            .await
            .map(|admitted| (route, admitted)),
        Err(error) => Err(error),
    };
    let ((route, rest_at), admitted) = match admitted {
        Ok(found) => found,
        Err(error) => return error.shaped(shape).into_response(),
    };
    let mut record = CallRecord {
        occurred_at: state.clock.now(),
        client_id: Some(admitted.principal.client_id),
        partner_id: Some(admitted.partner.id),
        partner_tenant_id: admitted.partner.tenant_id,
        customer_tenant_id: admitted.customer,
        upstream: upstream.as_str(),
        method: request.method().clone(),
        route: route.clone(),
        status: 0,
        latency_ms: 0,
        request_id: header_text(&request, &MS_REQUEST_ID),
        correlation_id: header_text(&request, &MS_CORRELATION_ID),
        error_code: None,
    };
    let outcome = forward(&state, admitted, upstream, &route, rest_at, request).await;
    record.latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            record.error_code = Some(error.code().as_str());
            error.shaped(shape).into_response()
        }
    };
    record.status = response.status().as_u16();
    state.proxy.recorder().record(record);
    response
}

/// The partner's state and the customer gate, then the engine; the answer streams back.
async fn forward(
    state: &AppState,
    admitted: Admitted,
    upstream: Upstream,
    route: &str,
    rest_at: usize,
    request: Request,
) -> Result<Response, ApiError> {
    let Admitted {
        principal,
        partner,
        customer,
        budget,
    } = admitted;
    check_partner_state(&partner)?;
    if let Some(customer) = customer {
        check_customer(state, &partner, customer).await?;
    }
    let proxied = state
        .proxy
        .handle(Call {
            client_id: principal.client_id,
            partner: partner.clone(),
            customer,
            upstream,
            request,
            rest_at,
            budget,
        })
        .await
        .map_err(proxy_error)?;
    let links_route = links_route(&state.config.public_url, route, &partner, customer);
    let base = match upstream {
        Upstream::Graph => &state.proxy.settings().graph_url,
        Upstream::PartnerCenter => &state.proxy.settings().partner_center_url,
    };
    let target = LinkTarget {
        upstream,
        upstream_base: base,
        route: &links_route,
    };
    Ok(stream_back(upstream, proxied, &target).await)
}

/// The absolute samgate URL that paging links point at instead of Microsoft: the route's
/// template up to `{*path}` with the tenants filled in.
fn links_route(
    public_url: &url::Url,
    route: &str,
    partner: &PartnerInfo,
    customer: Option<Uuid>,
) -> String {
    let public = public_url.as_str().trim_end_matches('/');
    let prefix = route.split_once("/{*").map_or(route, |(prefix, _)| prefix);
    let mut out = String::with_capacity(public.len() + prefix.len() + 40);
    out.push_str(public);
    let mut tenant = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for piece in prefix.split('/').filter(|p| !p.is_empty()) {
        out.push('/');
        match piece {
            "{partner_tid}" => {
                out.push_str(partner.tenant_id.hyphenated().encode_lower(&mut tenant))
            }
            "{customer_tid}" => match customer {
                Some(c) => out.push_str(c.hyphenated().encode_lower(&mut tenant)),
                None => out.push_str(piece),
            },
            other => out.push_str(other),
        }
    }
    out
}

/// The caller's `X-Samgate-Deadline`: whole seconds, more than 300 counting as 300. Anything else
/// is refused rather than ignored (found by schemathesis: `abc` silently meant the default).
fn deadline(headers: &axum::http::HeaderMap, default: Duration) -> Result<Duration, ApiError> {
    let Some(value) = headers.get(DEADLINE_HEADER) else {
        return Ok(default);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|seconds| Duration::from_secs(seconds.min(300)))
        .ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::BadRequest,
                "X-Samgate-Deadline must be whole seconds (0 to 300)",
            )
        })
}

fn header_text(request: &Request, name: &axum::http::HeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_owned)
}

/// The customer gate: a customer of this partner, with delegated access, before any token call.
async fn check_customer(
    state: &AppState,
    partner: &PartnerInfo,
    customer: Uuid,
) -> Result<(), ApiError> {
    let gate = crate::customers::gate(state, partner, customer)
        .await
        .map_err(|e| {
            ApiError::new(
                ApiErrorCode::ServiceUnavailable,
                "samgate's database is unavailable",
            )
            .with_detail(e)
            .with_retry_after(5)
        })?;
    match gate {
        Gate::Open(_) => Ok(()),
        Gate::NoAccess(found) => {
            let why = match (found.relationship, found.gdap_ends_at) {
                (CustomerRelationship::GdapExpired, Some(ended)) => format!(
                    "its GDAP relationships are not active (the last one ends or ended {})",
                    ended.date()
                ),
                (CustomerRelationship::GdapExpired, None) => {
                    "its GDAP relationships are not active".to_owned()
                }
                _ => "there is no GDAP relationship with this customer".to_owned(),
            };
            Err(ApiError::new(
                ApiErrorCode::CustomerAccessDenied,
                format!(
                    "{} has no delegated access to this customer: {why}. In Partner Center, the \
                     partner must give its users an active GDAP relationship with roles for this \
                     customer; samgate sees it at the next customer sync.",
                    partner.display_name
                ),
            ))
        }
        Gate::Unknown => Err(ApiError::new(
            ApiErrorCode::CustomerNotFound,
            format!(
                "{customer} is not a customer of {} (not in Partner Center's customer list nor in \
                 its GDAP relationships when samgate last read them). Check the id; a new customer \
                 appears after the next customer sync (POST /api/v1/partners/{}/customers/sync).",
                partner.display_name, partner.tenant_id
            ),
        )),
    }
}

fn check_partner_state(partner: &PartnerInfo) -> Result<(), ApiError> {
    let advice = partner.status_reason.as_deref().unwrap_or("");
    let code = partner
        .status_code
        .as_deref()
        .map(|c| format!(" (AADSTS{c})"))
        .unwrap_or_default();
    match partner.status.as_str() {
        "needs_consent" | "pending" => Err(ApiError::new(
            ApiErrorCode::ConsentRequired,
            format!(
                "the partner must consent again{code}: send them a re-consent invitation. {advice}"
            ),
        )),
        "mfa_required" => Err(ApiError::new(
            ApiErrorCode::MfaRequired,
            format!(
                "the partner's admin must sign in again with MFA{code}: send a re-consent invitation. {advice}"
            ),
        )),
        "offboarded" => Err(ApiError::new(
            ApiErrorCode::PartnerOffboarded,
            "this partner was offboarded: its consent was destroyed; onboard it again with a new invitation",
        )),
        _ => Ok(()),
    }
}

fn proxy_error(error: ProxyError) -> ApiError {
    match error {
        ProxyError::Token(BrokerError::ConsentRequired(c)) => ApiError::new(
            ApiErrorCode::ConsentRequired,
            format!(
                "Microsoft no longer accepts this partner's consent{}: send a re-consent invitation",
                c.and_then(|c| c.code).map(|code| format!(" (AADSTS{code})")).unwrap_or_default()
            ),
        ),
        ProxyError::Token(BrokerError::MfaRequired(c)) => ApiError::new(
            ApiErrorCode::MfaRequired,
            format!(
                "Microsoft requires the partner's admin to sign in again with MFA{}",
                c.and_then(|c| c.code).map(|code| format!(" (AADSTS{code})")).unwrap_or_default()
            ),
        ),
        ProxyError::Token(BrokerError::NoGrant) => ApiError::new(
            ApiErrorCode::ConsentRequired,
            "this partner has not consented: send an invitation",
        ),
        ProxyError::Token(BrokerError::Customer(refusal)) => {
            let code = match refusal.problem {
                CustomerProblem::NotFound => ApiErrorCode::CustomerNotFound,
                CustomerProblem::AccessDenied => ApiErrorCode::CustomerAccessDenied,
                CustomerProblem::ConsentMissing => ApiErrorCode::CustomerConsentMissing,
                CustomerProblem::PolicyBlocked => ApiErrorCode::CustomerPolicyBlocked,
                CustomerProblem::Unavailable => ApiErrorCode::CustomerUnavailable,
            };
            let aadsts = refusal
                .classified
                .as_ref()
                .and_then(|c| c.code)
                .map(|c| format!(" (AADSTS{c})"))
                .unwrap_or_default();
            ApiError::new(
                code,
                format!(
                    "Microsoft refused a token in this customer's tenant{aadsts}: {} samgate asks \
                     again after {} seconds.",
                    refusal.advice, refusal.retry_after
                ),
            )
            .with_retry_after(refusal.retry_after)
        }
        ProxyError::Token(BrokerError::Throttled) => ApiError::new(
            ApiErrorCode::UpstreamThrottled,
            "Microsoft's token service is throttling; retry later",
        )
        .with_retry_after(30),
        ProxyError::Token(BrokerError::AppConfiguration(c)) => ApiError::new(
            ApiErrorCode::AppMisconfigured,
            "Microsoft refused the CPV app's credential; an operator must fix samgate's app configuration",
        )
        .with_detail(format!("{:?}: {}", c.code, c.advice)),
        ProxyError::Token(err @ BrokerError::Unavailable(_)) => ApiError::new(
            ApiErrorCode::UpstreamUnavailable,
            "a token could not be obtained from Microsoft right now; retry shortly",
        )
        .with_detail(err),
        ProxyError::Token(err @ BrokerError::Storage(_)) => ApiError::new(
            ApiErrorCode::ServiceUnavailable,
            "samgate's database is unavailable, so no token could be obtained; retry shortly",
        )
        .with_retry_after(5)
        .with_detail(err),
        ProxyError::Throttled { retry_after } => ApiError::new(
            ApiErrorCode::UpstreamThrottled,
            format!("Microsoft is throttling this partner; retry after {retry_after} seconds"),
        )
        .with_retry_after(retry_after),
        ProxyError::Busy => ApiError::new(
            ApiErrorCode::RateLimited,
            "too many concurrent calls for this client or partner; retry shortly",
        )
        .with_retry_after(1),
        ProxyError::TooLarge { limit } => ApiError::new(
            ApiErrorCode::PayloadTooLarge,
            format!("request bodies are limited to {limit} bytes"),
        ),
        ProxyError::Unavailable(detail) => ApiError::new(
            ApiErrorCode::UpstreamUnavailable,
            "Microsoft did not answer in time; retry shortly",
        )
        .with_detail(detail),
        ProxyError::Path(e) => ApiError::new(ApiErrorCode::InvalidPath, e.to_string()),
    }
}

/// JSON answers up to this size are read whole so their paging links can point at samgate
/// ([`crate::proxy::links`]); larger ones stream through untouched (counted in
/// `samgate_proxy_links_unrewritten_total`). A Graph page of 999 users or a Partner Center page of
/// 500 customers is well below it.
const LINK_REWRITE_MAX_BYTES: usize = 4 * 1024 * 1024;

async fn stream_back(upstream: Upstream, proxied: Proxied, target: &LinkTarget<'_>) -> Response {
    let Proxied { response, permits } = proxied;
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let is_json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.as_bytes()
                .windows(4)
                .any(|w| w.eq_ignore_ascii_case(b"json"))
        });
    let fits = body
        .size_hint()
        .exact()
        .is_none_or(|n| n <= LINK_REWRITE_MAX_BYTES as u64);
    // samgate never asks for compression, so this holds; a compressed answer anyway is passed on
    // as it is (its links cannot be read) and counted.
    let identity = parts
        .headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("identity"));
    let headers = crate::proxy::headers::response_headers(parts.headers);
    if is_json && !identity {
        metrics::counter!("samgate_proxy_links_unrewritten_total", "upstream" => upstream.as_str())
            .increment(1);
    }
    let mut head: Vec<bytes::Bytes> = Vec::new();
    if status.is_success() && is_json && fits && identity {
        let mut read = 0usize;
        let mut whole = true;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let Ok(chunk) = frame.into_data() else {
                        continue;
                    };
                    read += chunk.len();
                    head.push(chunk);
                    if read > LINK_REWRITE_MAX_BYTES {
                        whole = false;
                        metrics::counter!("samgate_proxy_links_unrewritten_total", "upstream" => upstream.as_str())
                            .increment(1);
                        break;
                    }
                }
                None => break,
                Some(Err(error)) => {
                    // The upstream broke off: pass on what came, then the error ends the body
                    // (the caller sees a broken body, never a silently shortened one).
                    let stream = futures_util::stream::iter(head.into_iter().map(Ok))
                        .chain(futures_util::stream::once(async move { Err(error) }));
                    drop(permits);
                    return answer(upstream, status, headers, Body::from_stream(stream));
                }
            }
        }
        if whole {
            drop(permits);
            let body = match head.len() {
                0 => Body::empty(),
                1 => {
                    let chunk = head.swap_remove(0);
                    match crate::proxy::links::rewrite(&chunk, target) {
                        Some(rewritten) => Body::from(rewritten),
                        None => Body::from(chunk),
                    }
                }
                _ => {
                    let whole: Vec<u8> = head.concat();
                    let rewritten = crate::proxy::links::rewrite(&whole, target).unwrap_or(whole);
                    Body::from(rewritten)
                }
            };
            return answer(upstream, status, headers, body);
        }
    }
    // The concurrency permits live as long as the body streams.
    body.hold(permits);
    if head.is_empty() {
        return answer(upstream, status, headers, Body::new(body));
    }
    let rest = body.into_data_stream();
    let stream = futures_util::stream::iter(head.into_iter().map(Ok)).chain(rest);
    answer(upstream, status, headers, Body::from_stream(stream))
}

fn answer(
    upstream: Upstream,
    status: StatusCode,
    mut headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    headers.insert(UPSTREAM_HEADER, HeaderValue::from_static(upstream.as_str()));
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner() -> PartnerInfo {
        PartnerInfo {
            id: Uuid::nil(),
            tenant_id: Uuid::from_u128(0xC047_0500),
            display_name: "Contoso".into(),
            status: crate::domain::PartnerStatus::Healthy,
            status_code: None,
            status_reason: None,
        }
    }

    #[test]
    fn paging_links_point_at_the_matched_route_with_the_tenants_filled_in() {
        let public = url::Url::parse("https://samgate.example/").expect("url");
        let customer = Uuid::from_u128(0xCAFE);
        assert_eq!(
            links_route(
                &public,
                "/api/v1/partners/{partner_tid}/partner-center/{*path}",
                &partner(),
                None
            ),
            "https://samgate.example/api/v1/partners/00000000-0000-0000-0000-0000c0470500/partner-center"
        );
        assert_eq!(
            links_route(
                &public,
                "/api/v1/partners/{partner_tid}/customers/{customer_tid}/graph/{*path}",
                &partner(),
                Some(customer)
            ),
            "https://samgate.example/api/v1/partners/00000000-0000-0000-0000-0000c0470500/customers/00000000-0000-0000-0000-00000000cafe/graph"
        );
    }
}
