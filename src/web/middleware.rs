//! Cross-cutting request handling: request ids, the request span, and logging each failure once.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::HeaderValue;
use axum::response::Response;
use tracing::Span;

use super::errors::Failure;

const REQUEST_ID: &str = "x-request-id";

/// A caller's `x-request-id` is kept only when it is short and plain, so it cannot forge log
/// lines; otherwise one is generated ([`super::edge`]).
pub(super) fn is_plain_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// One span per request, named by the route template, never the raw URI. Its three values are
/// written as they are (`%`, their `Display`), not escaped as other text is: a route template, a
/// method token and a plain request id (checked here too) hold no quote, space or control
/// character, and escaping them cost each proxied call a few thousand instructions (BENCHMARKS.md).
pub fn make_request_span<B>(request: &axum::http::Request<B>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| is_plain_request_id(v))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "http.request",
        http.method = %request.method().as_str(),
        http.route = %route,
        request.id = %request_id,
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
pub fn log_failure(response: &Response) {
    if let Some(failure) = response.extensions().get::<Failure>() {
        let status = response.status().as_u16();
        let detail = failure.detail.as_deref().unwrap_or("");
        if status >= 500 {
            tracing::error!(error.reference = %failure.reference, error.code = failure.code, error.detail = detail, "request failed");
        } else {
            tracing::info!(error.reference = %failure.reference, error.code = failure.code, error.detail = detail, "request refused");
        }
    }
}
