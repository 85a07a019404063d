//! Cross-cutting request handling: request ids, the request span, and logging each failure once.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use super::errors::Failure;

const REQUEST_ID: &str = "x-request-id";

/// Keeps a caller's `x-request-id` only when it is short and plain, so it cannot forge log lines;
/// otherwise one is generated.
pub async fn sanitize_request_id(mut request: Request, next: Next) -> Response {
    let acceptable = request
        .headers()
        .get(REQUEST_ID)
        .is_some_and(is_plain_request_id);
    if !acceptable {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

fn is_plain_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// One span per request, named by the route template, never the raw URI.
pub fn make_request_span<B>(request: &axum::http::Request<B>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "http.request",
        http.method = %request.method(),
        http.route = route,
        request.id = request_id,
        http.status = tracing::field::Empty,
    )
}

/// Records the status and logs one line per request (see below for levels).
/// Successes are logged at debug level: every request is already counted in the metrics and every
/// proxied call is in `proxy_calls`, and a line per success cost ~15 % of the proxy's CPU in the
/// benchmark (BENCHMARKS.md). Refusals and failures stay at info and above.
pub fn on_response<B>(response: &axum::http::Response<B>, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    span.record("http.status", status);
    let latency_ms = latency.as_millis() as u64;
    if status < 400 {
        tracing::debug!(http.status = status, latency_ms, "request finished");
    } else {
        tracing::info!(http.status = status, latency_ms, "request finished");
    }
}

/// Logs the failure a handler returned, once, with the reference id the client was shown.
pub async fn log_failures(response: Response) -> Response {
    if let Some(failure) = response.extensions().get::<Failure>() {
        let status = response.status().as_u16();
        let detail = failure.detail.as_deref().unwrap_or("");
        if status >= 500 {
            tracing::error!(error.reference = %failure.reference, error.code = failure.code, error.detail = detail, "request failed");
        } else {
            tracing::info!(error.reference = %failure.reference, error.code = failure.code, error.detail = detail, "request refused");
        }
    }
    response
}
