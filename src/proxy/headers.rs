//! Which headers cross the proxy. Towards Microsoft only an allow-list passes (content negotiation
//! except `Accept-Encoding`: answers must come back uncompressed so their paging links can be
//! pointed at samgate, see `proxy::links`;
//! conditional requests, Graph's `Prefer`/`ConsistencyLevel`, Partner Center's `MS-*` and
//! `X-Locale`, request ids): credentials, cookies, hop-by-hop, forwarding and method-override
//! headers never do. Cookies and hop-by-hop headers from Microsoft never reach the caller.

use axum::http::{HeaderMap, HeaderName};

/// Headers a caller may forward to Microsoft, by exact name; plus every `ms-*` (Partner Center's
/// own: `MS-RequestId`, `MS-CorrelationId`, `MS-Contract-Version`…) unless listed in `Connection`.
const REQUEST_ALLOW: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "content-encoding",
    "content-language",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "prefer",
    "consistencylevel",
    "client-request-id",
    "return-client-request-id",
    "x-locale",
    "x-ms-customeruser-upn",
    "odata-version",
    "odata-maxversion",
];

/// Headers that never pass, whatever the lists above say (plus any named in `Connection`).
const REQUEST_DENY: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "expect",
];

/// Headers of the upstream response that stay behind.
const RESPONSE_DENY: &[&str] = &[
    "set-cookie",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "www-authenticate-samgate",
];

fn listed_in_connection(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Whether `name` (lower case, as `HeaderName` keeps it) stays behind under `deny` and the
/// headers that `Connection` names.
fn denied(name: &str, deny: &[&str], connection: &[String]) -> bool {
    deny.contains(&name)
        || name.starts_with("x-samgate-")
        || name.starts_with("proxy-")
        || connection.iter().any(|c| c == name)
}

/// The caller's headers that may go to Microsoft: the allow-list, minus the deny-list. Dropped
/// names are logged at debug (names only, never values).
pub fn request_headers(headers: &HeaderMap) -> HeaderMap {
    let connection = listed_in_connection(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut dropped: Vec<&str> = Vec::new();
    for (name, value) in headers {
        let lower = name.as_str();
        if denied(lower, REQUEST_DENY, &connection) {
            continue;
        }
        if REQUEST_ALLOW.contains(&lower) || lower.starts_with("ms-") {
            out.append(name.clone(), value.clone());
        } else if !dropped.contains(&lower) {
            dropped.push(lower);
        }
    }
    if !dropped.is_empty() {
        tracing::debug!(proxy.dropped_headers = ?dropped, "request headers not forwarded");
    }
    out
}

/// How many headers samgate may add to a proxied answer: the edge's security headers (seven with
/// HSTS, `web::router`), `x-request-id`, `content-length`, and one to spare.
const ADDED_ON_THE_WAY_BACK: usize = 10;

/// Microsoft's headers that may go back to the caller (filtered in place: most of them pass).
///
/// Room is made once for what samgate adds on the way back (the edge's security headers, the
/// request id, a content length), instead of the map growing, and rehashing, as they arrive.
pub fn response_headers(mut upstream: HeaderMap) -> HeaderMap {
    upstream.reserve(ADDED_ON_THE_WAY_BACK);
    let connection = listed_in_connection(&upstream);
    let dropped: Vec<HeaderName> = upstream
        .keys()
        .filter(|name| denied(name.as_str(), RESPONSE_DENY, &connection))
        .cloned()
        .collect();
    for name in &dropped {
        upstream.remove(name);
    }
    upstream
}

/// `MS-RequestId` (idempotency) and `MS-CorrelationId` (tracing), kept from the caller.
pub const MS_REQUEST_ID: HeaderName = HeaderName::from_static("ms-requestid");
/// See [`MS_REQUEST_ID`].
pub const MS_CORRELATION_ID: HeaderName = HeaderName::from_static("ms-correlationid");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_cookies_and_hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer sgk_secret"),
            ("cookie", "a=b"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("x-forwarded-for", "1.2.3.4"),
            ("host", "evil.example"),
            ("x-samgate-deadline", "5"),
            ("accept", "application/json"),
            ("ms-correlationid", "abc"),
            ("x-locale", "en-US"),
        ] {
            headers.append(HeaderName::from_static(name), value.parse().expect("value"));
        }
        let out = request_headers(&headers);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept", "ms-correlationid", "x-locale"]);
    }

    #[test]
    fn method_override_and_rewrite_headers_never_pass_but_graph_and_partner_center_ones_do() {
        let mut headers = HeaderMap::new();
        for name in [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
            "x-original-url",
            "x-rewrite-url",
            "x-anything-new",
            "consistencylevel",
            "prefer",
            "if-match",
            "content-type",
            "ms-contract-version",
            "client-request-id",
        ] {
            headers.append(HeaderName::from_static(name), "v".parse().expect("value"));
        }
        let out = request_headers(&headers);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "client-request-id",
                "consistencylevel",
                "content-type",
                "if-match",
                "ms-contract-version",
                "prefer",
            ]
        );
    }

    #[test]
    fn upstream_cookies_do_not_reach_the_caller() {
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", "x=y".parse().expect("value"));
        headers.append("content-type", "application/json".parse().expect("value"));
        headers.append("ms-requestid", "r1".parse().expect("value"));
        let out = response_headers(headers);
        assert!(out.get("set-cookie").is_none());
        assert_eq!(out["ms-requestid"], "r1");
    }
}
