//! Which headers cross the proxy. Credentials, cookies, hop-by-hop and forwarding headers from the
//! caller never reach Microsoft; cookies and hop-by-hop headers from Microsoft never reach the caller.

use axum::http::{HeaderMap, HeaderName};

/// Headers a caller may never forward (plus any named in its `Connection` header).
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

fn filtered(headers: &HeaderMap, deny: &[&str]) -> HeaderMap {
    let connection = listed_in_connection(headers);
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let lower = name.as_str();
        let denied = deny.contains(&lower)
            || lower.starts_with("x-samgate-")
            || lower.starts_with("proxy-")
            || connection.iter().any(|c| c == lower);
        if !denied {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The caller's headers that may go to Microsoft.
pub fn request_headers(incoming: &HeaderMap) -> HeaderMap {
    filtered(incoming, REQUEST_DENY)
}

/// Microsoft's headers that may go back to the caller.
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    filtered(upstream, RESPONSE_DENY)
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
    fn upstream_cookies_do_not_reach_the_caller() {
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", "x=y".parse().expect("value"));
        headers.append("content-type", "application/json".parse().expect("value"));
        headers.append("ms-requestid", "r1".parse().expect("value"));
        let out = response_headers(&headers);
        assert!(out.get("set-cookie").is_none());
        assert_eq!(out["ms-requestid"], "r1");
    }
}
