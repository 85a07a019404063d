//! Token-endpoint errors in Microsoft's exact JSON shape (protocol page §2.4):
//! `error`, `error_description` ("AADSTSn: msg\r\nTrace ID…\r\nCorrelation ID…\r\nTimestamp…"),
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`, optional `suberror`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use crate::state::Shared;

/// Where `error_uri` points.
pub const ERROR_PAGE: &str = "https://login.microsoftonline.com/error";

/// One AADSTS error.
#[derive(Debug, Clone)]
pub struct AadError {
    pub error: &'static str,
    pub code: u32,
    pub message: String,
    pub suberror: Option<&'static str>,
    pub status: Option<u16>,
    /// Whether the body links the error page (`error_uri`); Microsoft omits it for some codes.
    pub error_uri: bool,
}

impl AadError {
    pub fn new(error: &'static str, code: u32, message: impl Into<String>) -> AadError {
        AadError {
            error,
            code,
            message: message.into(),
            suberror: None,
            status: None,
            error_uri: true,
        }
    }

    pub fn invalid_grant(code: u32, message: impl Into<String>) -> AadError {
        AadError::new("invalid_grant", code, message)
    }

    pub fn invalid_request(code: u32, message: impl Into<String>) -> AadError {
        AadError::new("invalid_request", code, message)
    }

    pub fn invalid_client(code: u32, message: impl Into<String>) -> AadError {
        AadError::new("invalid_client", code, message)
    }

    pub fn missing_parameter(name: &str) -> AadError {
        AadError::invalid_request(
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub fn with_suberror(mut self, suberror: &'static str) -> AadError {
        self.suberror = Some(suberror);
        self
    }

    /// Leaves `error_uri` out of the body.
    pub fn without_error_uri(mut self) -> AadError {
        self.error_uri = false;
        self
    }

    pub fn with_status(mut self, status: u16) -> AadError {
        self.status = Some(status);
        self
    }

    /// "AADSTSn: message" (the first line of `error_description`).
    pub fn headline(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    /// The JSON body, with fresh trace and correlation ids.
    pub fn body(&self, now: OffsetDateTime, correlation_id: Option<&str>) -> serde_json::Value {
        let ts = timestamp(now);
        let trace_id = Uuid::new_v4().to_string();
        let correlation_id = correlation_id
            .and_then(|c| Uuid::parse_str(c).ok())
            .unwrap_or_else(Uuid::new_v4)
            .to_string();
        let mut body = serde_json::json!({
            "error": self.error,
            "error_description": format!(
                "{}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {ts}",
                self.headline()
            ),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        });
        if self.error_uri {
            // Microsoft links its own error page whatever host the request used (the authority
            // may be login.windows.net, a custom domain, or a national cloud): MSAL's recorded
            // error bodies all carry `https://login.microsoftonline.com/error?code=n`.
            body["error_uri"] = serde_json::Value::from(format!("{ERROR_PAGE}?code={}", self.code));
        }
        if let Some(s) = self.suberror {
            body["suberror"] = serde_json::Value::from(s);
        }
        body
    }

    /// The HTTP response: 400, or the configured status for `invalid_client` (UNCONFIRMED: 401).
    pub fn response(&self, shared: &Shared, correlation_id: Option<&str>) -> Response {
        let status = self.status.unwrap_or_else(|| {
            if self.error == "invalid_client" {
                shared.settings().invalid_client_status
            } else {
                400
            }
        });
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = self.body(shared.now(), correlation_id);
        let trace_id = body["trace_id"]
            .as_str()
            .and_then(|t| HeaderValue::from_str(t).ok());
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(trace_id) = trace_id {
            // Microsoft's `x-ms-request-id` is the body's `trace_id` (recorded 90002 response).
            resp.headers_mut().insert("x-ms-request-id", trace_id);
        }
        no_store(&mut resp);
        resp
    }
}

/// The token endpoint's headers (recorded responses in tests/recorded/identity): `Cache-Control:
/// no-store, no-cache`, `Pragma: no-cache`, `Expires: -1`, `X-Content-Type-Options: nosniff`, and an
/// `x-ms-request-id` (the trace id; a fresh one when the body names none).
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("-1"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key("x-ms-request-id")
        && let Ok(id) = HeaderValue::from_str(&Uuid::new_v4().to_string())
    {
        h.insert("x-ms-request-id", id);
    }
}

/// Microsoft's "2019-11-13 22:33:10Z".
pub fn timestamp(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}
