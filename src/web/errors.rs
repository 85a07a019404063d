//! The web layer's two error types: `ApiError` (JSON with a stable code) and `PageError` (an HTML
//! page with a reference id). Both render without side effects; the `log_failures` middleware logs
//! each failure once, inside the request span, with the same reference id the client sees.

use askama::Template;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

/// A short id a person can quote to an operator; the log line carries the same id.
fn new_reference() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..12].to_owned()
}

/// What the failure-logging middleware finds in a response's extensions.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The reference id shown to the client.
    pub reference: String,
    /// The stable code (API) or kind (pages).
    pub code: &'static str,
    /// Operator-facing detail; never shown to clients, never contains secrets.
    pub detail: Option<String>,
}

/// Stable, documented error codes of the JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// The request is malformed.
    BadRequest,
    /// No valid credential was presented.
    Unauthorized,
    /// The credential does not allow this.
    Forbidden,
    /// Nothing exists at this path.
    NotFound,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The request took too long.
    Timeout,
    /// A dependency (the database) is unavailable.
    ServiceUnavailable,
    /// An unexpected failure; the reference id is in the log.
    Internal,
    /// The API key is missing, malformed, unknown, expired or revoked.
    InvalidApiKey,
    /// The key's client may not act for this partner.
    ForbiddenPartner,
    /// The key's client is read-only.
    ForbiddenMethod,
    /// Not a customer of this partner (checked against the customer directory).
    CustomerNotFound,
    /// The partner has no active delegated (GDAP) access to this customer.
    CustomerAccessDenied,
    /// The customer's Conditional Access or device policy refuses the partner's users.
    CustomerPolicyBlocked,
    /// Microsoft failed for this customer a moment ago; retry after `Retry-After` seconds.
    CustomerUnavailable,
    /// No partner with this tenant id.
    PartnerNotFound,
    /// The partner must consent again; an operator sends a re-consent invitation.
    ConsentRequired,
    /// The partner's admin must sign in again with MFA.
    MfaRequired,
    /// The CPV app is not consented in the customer tenant (grant it through app consents).
    CustomerConsentMissing,
    /// The proxied path tries to leave its prefix.
    InvalidPath,
    /// Microsoft throttles this partner; retry after `Retry-After` seconds.
    UpstreamThrottled,
    /// Microsoft is unreachable or failing.
    UpstreamUnavailable,
    /// Too many concurrent calls for this client or partner.
    RateLimited,
    /// The CPV app's credential or registration was refused by Microsoft.
    AppMisconfigured,
    /// The partner was offboarded: its grant is destroyed; it must be onboarded anew.
    PartnerOffboarded,
}

impl ApiErrorCode {
    /// Every code, in the order the OpenAPI document lists them.
    pub const ALL: [ApiErrorCode; 25] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::PayloadTooLarge,
        Self::Timeout,
        Self::ServiceUnavailable,
        Self::Internal,
        Self::InvalidApiKey,
        Self::ForbiddenPartner,
        Self::ForbiddenMethod,
        Self::PartnerNotFound,
        Self::ConsentRequired,
        Self::MfaRequired,
        Self::CustomerConsentMissing,
        Self::CustomerNotFound,
        Self::CustomerAccessDenied,
        Self::CustomerPolicyBlocked,
        Self::CustomerUnavailable,
        Self::InvalidPath,
        Self::UpstreamThrottled,
        Self::UpstreamUnavailable,
        Self::RateLimited,
        Self::AppMisconfigured,
        Self::PartnerOffboarded,
    ];

    /// The HTTP status of this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::ForbiddenPartner
            | Self::ForbiddenMethod
            | Self::CustomerAccessDenied
            | Self::CustomerPolicyBlocked => StatusCode::FORBIDDEN,
            Self::PartnerNotFound | Self::CustomerNotFound => StatusCode::NOT_FOUND,
            Self::CustomerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ConsentRequired | Self::MfaRequired | Self::CustomerConsentMissing => {
                StatusCode::CONFLICT
            }
            Self::InvalidPath => StatusCode::BAD_REQUEST,
            Self::UpstreamThrottled | Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamUnavailable | Self::AppMisconfigured => StatusCode::BAD_GATEWAY,
            Self::PartnerOffboarded => StatusCode::GONE,
        }
    }

    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Timeout => "timeout",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
            Self::InvalidApiKey => "invalid_api_key",
            Self::ForbiddenPartner => "forbidden_partner",
            Self::ForbiddenMethod => "forbidden_method",
            Self::CustomerNotFound => "customer_not_found",
            Self::CustomerAccessDenied => "customer_access_denied",
            Self::CustomerPolicyBlocked => "customer_policy_blocked",
            Self::CustomerUnavailable => "customer_unavailable",
            Self::PartnerNotFound => "partner_not_found",
            Self::ConsentRequired => "consent_required",
            Self::MfaRequired => "mfa_required",
            Self::CustomerConsentMissing => "customer_consent_missing",
            Self::InvalidPath => "invalid_path",
            Self::UpstreamThrottled => "upstream_throttled",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::RateLimited => "rate_limited",
            Self::AppMisconfigured => "app_misconfigured",
            Self::PartnerOffboarded => "partner_offboarded",
        }
    }
}

/// An error of the JSON API: `{"code": "...", "message": "...", "reference": "..."}`, always with
/// the stable code in the `x-samgate-error` header too. On proxy routes the body also carries the
/// upstream's own error shape ([`ErrorShape`]), so Microsoft's SDKs read samgate's errors like
/// Microsoft's.
#[derive(Debug)]
pub struct ApiError {
    code: ApiErrorCode,
    message: String,
    detail: Option<String>,
    retry_after: Option<u64>,
    shape: ErrorShape,
}

/// Whose error shape a samgate error wears besides its own fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorShape {
    /// `{"code", "message", "reference"}` only.
    #[default]
    Samgate,
    /// Also Graph's `{"error": {"code", "message", "innerError": {"date", "request-id",
    /// "reference"}}}` (`request-id` is samgate's reference): Graph SDKs raise it as an
    /// `ODataError` with that code.
    Graph,
    /// Also Partner Center's `{"code", "description", "data", "source"}` (the code stays samgate's
    /// string; Partner Center's own codes are strings or numbers).
    PartnerCenter,
}

/// The header that names samgate's stable code on every error samgate produces itself.
pub const ERROR_HEADER: &str = "x-samgate-error";

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    code: ApiErrorCode,
    message: &'a str,
    reference: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<GraphError<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<[(); 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
}

#[derive(Serialize)]
struct GraphError<'a> {
    code: ApiErrorCode,
    message: &'a str,
    #[serde(rename = "innerError")]
    inner_error: GraphInnerError<'a>,
}

#[derive(Serialize)]
struct GraphInnerError<'a> {
    date: String,
    #[serde(rename = "request-id")]
    request_id: &'a str,
    reference: &'a str,
}

impl ApiError {
    /// An error with a client-facing message.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            retry_after: None,
            shape: ErrorShape::Samgate,
        }
    }

    /// An unexpected failure; `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            code: ApiErrorCode::Internal,
            message: "samgate failed to handle this request; quote the reference to an operator"
                .into(),
            detail: Some(detail.to_string()),
            retry_after: None,
            shape: ErrorShape::Samgate,
        }
    }

    /// Also wears the upstream's error shape (proxy routes).
    pub fn shaped(mut self, shape: ErrorShape) -> Self {
        self.shape = shape;
        self
    }

    /// Sets `Retry-After` (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds operator-facing detail for the log.
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// The stable code.
    pub fn code(&self) -> ApiErrorCode {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reference = new_reference();
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let body = ApiErrorBody {
            code: self.code,
            message: &self.message,
            reference: &reference,
            error: (self.shape == ErrorShape::Graph).then(|| GraphError {
                code: self.code,
                message: &self.message,
                inner_error: GraphInnerError {
                    date,
                    request_id: &reference,
                    reference: &reference,
                },
            }),
            description: (self.shape == ErrorShape::PartnerCenter).then_some(self.message.as_str()),
            data: (self.shape == ErrorShape::PartnerCenter).then_some([]),
            source: (self.shape == ErrorShape::PartnerCenter).then_some("samgate"),
        };
        let mut response = (self.code.status(), Json(body)).into_response();
        response
            .headers_mut()
            .insert(ERROR_HEADER, HeaderValue::from_static(self.code.as_str()));
        match self.code {
            ApiErrorCode::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"samgate\""),
                );
            }
            ApiErrorCode::InvalidApiKey => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"samgate\", error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(Failure {
            reference,
            code: self.code.as_str(),
            detail: self.detail,
        });
        response
    }
}

/// An error shown as an HTML page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: String,
    message: String,
    detail: Option<String>,
    /// Boxed: most page errors have none, and `Result<_, PageError>` stays small.
    brand: Option<Box<PartnerBrand>>,
}

/// Who a partner-facing page speaks for: the CPV's name and its support contact.
#[derive(Debug, Clone)]
pub struct PartnerBrand {
    /// `SAMGATE_CPV_NAME`.
    pub cpv_name: String,
    /// `SAMGATE_SUPPORT_URL` / `SAMGATE_SUPPORT_EMAIL`.
    pub support: crate::config::SupportContact,
}

impl PartnerBrand {
    /// The brand of this deployment.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            cpv_name: config.cpv_name.clone(),
            support: config.support.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    reference: &'a str,
    status: u16,
    brand: Option<&'a PartnerBrand>,
}

impl PageError {
    /// A page with a title and an explanation a person can act on.
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
            detail: None,
            brand: None,
        }
    }

    /// Shown to a partner admin: the page carries the CPV's name and support contact.
    pub fn for_partner(mut self, brand: PartnerBrand) -> Self {
        self.brand = Some(Box::new(brand));
        self
    }

    /// The page for an unknown address.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is nothing at this address. Check the link you followed.",
        )
    }

    /// An unexpected failure; `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong".into(),
            message: "samgate could not complete this request. Try again in a moment; if it keeps \
                      failing, send the reference below to the people who sent you here."
                .into(),
            detail: Some(detail.to_string()),
            brand: None,
        }
    }

    /// Adds operator-facing detail for the log.
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let reference = new_reference();
        let page = ErrorPage {
            title: &self.title,
            message: &self.message,
            reference: &reference,
            status: self.status.as_u16(),
            brand: self.brand.as_deref(),
        };
        let mut response = match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            // The error page itself failed: a plain text fallback, still with the reference.
            Err(_) => (
                self.status,
                format!("{} (reference {reference})", self.title),
            )
                .into_response(),
        };
        if self.brand.is_none() {
            response.extensions_mut().insert(ShownPageError {
                status: self.status,
                title: self.title,
                message: self.message,
                reference: reference.clone(),
            });
        }
        response.extensions_mut().insert(Failure {
            reference,
            code: "page_error",
            detail: self.detail,
        });
        response
    }
}

/// What an error page said, in the response's extensions, so an area with its own layout (the
/// admin UI) can show the same words inside its navigation.
#[derive(Debug, Clone)]
pub struct ShownPageError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The page's heading.
    pub title: String,
    /// What happened and what to do.
    pub message: String,
    /// The reference id (the log line carries it too).
    pub reference: String,
}

impl From<askama::Error> for PageError {
    fn from(err: askama::Error) -> Self {
        Self::internal(format!("template rendering failed: {err}"))
    }
}

/// Renders a template into a page response, turning a render failure into a `PageError`.
pub fn render<T: Template>(template: &T) -> Result<Html<String>, PageError> {
    Ok(Html(template.render()?))
}

#[cfg(test)]
mod tests {
    use super::ApiErrorCode;

    #[test]
    fn the_openapi_document_lists_exactly_the_error_codes_the_server_has() {
        let document: serde_json::Value =
            serde_json::from_str(include_str!("api/openapi.json")).expect("openapi.json");
        let listed: Vec<&str> =
            document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
                .as_array()
                .expect("codes")
                .iter()
                .filter_map(|c| c.as_str())
                .collect();
        let ours: Vec<&str> = ApiErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
        assert_eq!(
            ApiErrorCode::CustomerNotFound.status().as_u16(),
            404,
            "customer_not_found is a 404"
        );
        assert_eq!(ApiErrorCode::CustomerPolicyBlocked.status().as_u16(), 403);
        assert_eq!(ApiErrorCode::CustomerUnavailable.status().as_u16(), 503);
    }
}
