//! The web layer's two error types: `ApiError` (JSON with a stable code) and `PageError` (an HTML
//! page with a reference id). Both render without side effects; the edge service (`web::edge`) logs
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

    /// What the code means, for the API reference (one sentence, Markdown).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::BadRequest => {
                "The request is malformed: a tenant id that is not a GUID, a query parameter \
                 that does not parse or is out of range, an `X-Samgate-Deadline` that is not whole \
                 seconds, or a body that is not the documented JSON."
            }
            Self::Unauthorized => {
                "No valid credential was presented (API keys are refused with `invalid_api_key`)."
            }
            Self::Forbidden => "The credential does not allow this.",
            Self::NotFound => "There is no API route at this path.",
            Self::PayloadTooLarge => {
                "The request body is larger than samgate accepts \
                 (`SAMGATE_PROXY_MAX_BODY_BYTES`, 32 MiB by default)."
            }
            Self::Timeout => "The request took longer than samgate allows.",
            Self::ServiceUnavailable => {
                "samgate's own database is unavailable, so it cannot check the key, look up the \
                 partner or obtain a token; the partner's health is not affected."
            }
            Self::Internal => "An unexpected failure inside samgate.",
            Self::InvalidApiKey => {
                "The API key is missing, malformed, unknown, expired or revoked, or was sent \
                 without the `Bearer` scheme."
            }
            Self::ForbiddenPartner => "The key's API client may not act for this partner.",
            Self::ForbiddenMethod => {
                "The key's API client is read-only: it may send only GET, HEAD and OPTIONS."
            }
            Self::PartnerNotFound => "No partner has this tenant id.",
            Self::ConsentRequired => {
                "Microsoft no longer accepts the partner's consent, or the partner never consented."
            }
            Self::MfaRequired => "The partner's admin must sign in again with MFA.",
            Self::CustomerConsentMissing => {
                "The CPV app is not consented in this customer tenant, or with other permissions \
                 (AADSTS65001, 700016, 90099)."
            }
            Self::CustomerNotFound => {
                "Not a customer of this partner, or Microsoft knows no such tenant (AADSTS90002)."
            }
            Self::CustomerAccessDenied => {
                "The partner has no active GDAP relationship or role in this customer \
                 (AADSTS50020, 50177)."
            }
            Self::CustomerPolicyBlocked => {
                "The customer's Conditional Access or device policy refuses the partner's users \
                 (AADSTS50076, 50079, 53000–53004)."
            }
            Self::CustomerUnavailable => {
                "Microsoft failed for this customer a moment ago; samgate remembers it briefly."
            }
            Self::InvalidPath => {
                "The proxied path is refused: it must start with the API version (`v1/…` for \
                 Partner Center, `v1.0/…` or `beta/…` for Graph) and may not hold `.`/`..` \
                 segments, encoded slashes or dots, or backslashes."
            }
            Self::UpstreamThrottled => {
                "Microsoft throttles this partner (or its token service) for longer than your \
                 `X-Samgate-Deadline` lets samgate wait."
            }
            Self::UpstreamUnavailable => {
                "Microsoft is unreachable, failing or too slow, after samgate's own retries."
            }
            Self::RateLimited => "Too many concurrent calls for this API client or partner.",
            Self::AppMisconfigured => "Microsoft refused the CPV app's credential or registration.",
            Self::PartnerOffboarded => "The partner was offboarded: its grant is destroyed.",
        }
    }

    /// What the caller should do about it, for the API reference (Markdown).
    pub fn action(self) -> &'static str {
        match self {
            Self::BadRequest | Self::InvalidPath => {
                "Fix the request (the `message` says what is wrong); retrying it unchanged fails again."
            }
            Self::Unauthorized | Self::InvalidApiKey => {
                "Send a current key as `Authorization: Bearer sgk_…`; an operator issues keys with \
                 `samgate clients keys create`."
            }
            Self::Forbidden => "Use a credential that allows it, or ask an operator.",
            Self::NotFound => "Check the method and path against this reference.",
            Self::PayloadTooLarge => "Send a smaller body.",
            Self::Timeout => "Retry; if it keeps happening, ask an operator.",
            Self::ServiceUnavailable | Self::CustomerUnavailable | Self::RateLimited => {
                "Retry after `Retry-After` seconds."
            }
            Self::Internal => {
                "Retry once; if it fails again, quote the `reference` to an operator."
            }
            Self::ForbiddenPartner => {
                "Use a key scoped to this partner, or ask an operator to add the partner to the \
                 client's scope."
            }
            Self::ForbiddenMethod => "Send writes with a read-write key.",
            Self::PartnerNotFound => {
                "Check the id (`GET /api/v1/partners` lists yours); a partner exists once its \
                 admin has consented through an invitation."
            }
            Self::ConsentRequired | Self::MfaRequired => {
                "Do not retry: create a link with `POST /api/v1/partners/{partner_tid}/reconsent-invitation` \
                 and send it to the partner's admin."
            }
            Self::CustomerConsentMissing => {
                "Grant the app consent (admin UI, or Partner Center `applicationconsents` through \
                 the proxy), then retry."
            }
            Self::CustomerNotFound => {
                "Check the id; a new customer appears after the next customer sync \
                 (`POST /api/v1/partners/{partner_tid}/customers/sync`)."
            }
            Self::CustomerAccessDenied => {
                "The partner gives its users an active GDAP relationship with roles for this \
                 customer in Partner Center; samgate sees it at the next customer sync."
            }
            Self::CustomerPolicyBlocked => {
                "The customer's admin excludes service provider users from that policy."
            }
            Self::UpstreamThrottled => {
                "Retry after `Retry-After` seconds, or send a larger `X-Samgate-Deadline`; other \
                 partners are not slowed."
            }
            Self::UpstreamUnavailable => {
                "Retry with backoff. samgate already retried reads, and writes that carry your \
                 `MS-RequestId`."
            }
            Self::AppMisconfigured => {
                "Do not retry: an operator fixes samgate's app credential or registration."
            }
            Self::PartnerOffboarded => {
                "Stop calling for this partner; to serve it again, onboard it with a new invitation."
            }
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

/// The OpenAPI schema of the codes (`ErrorCode`): every code of [`ApiErrorCode::ALL`] with its
/// status and meaning; the document's `x-samgate-errors` adds what to do.
impl utoipa::PartialSchema for ApiErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut description = String::from(
            "samgate's stable error code, also sent in the `x-samgate-error` header. \
             The document's `x-samgate-errors` says what to do about each.\n",
        );
        for code in Self::ALL {
            description.push_str(&format!(
                "\n- `{}` ({}): {}",
                code.as_str(),
                code.status().as_u16(),
                code.meaning()
            ));
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::ALL.map(Self::as_str)))
            .description(Some(description))
            .into()
    }
}

impl utoipa::ToSchema for ApiErrorCode {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

/// An error samgate produced itself (Microsoft's own errors pass through unchanged, marked with
/// `x-samgate-upstream` instead). The stable code is in `code` and in the `x-samgate-error` header.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ApiErrorBody<'a> {
    code: ApiErrorCode,
    /// What happened and what to do, for a person.
    message: &'a str,
    /// Quote it to an operator: samgate's log line of this failure carries it.
    reference: &'a str,
    /// Graph routes only: Graph's error shape, so a Graph SDK raises an `ODataError` with
    /// samgate's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<GraphError<'a>>,
    /// Partner Center routes only: the message again, as Partner Center names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    /// Partner Center routes only: always empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>, max_items = 0)]
    data: Option<[(); 0]>,
    /// Partner Center routes only: `samgate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
}

/// Graph's error object, as samgate's errors carry it on Graph routes.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GraphError<'a> {
    code: ApiErrorCode,
    message: &'a str,
    #[serde(rename = "innerError")]
    inner_error: GraphInnerError<'a>,
}

/// Graph's `innerError`: `request-id` is samgate's reference.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GraphInnerError<'a> {
    /// When samgate answered (RFC 3339).
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
        let document =
            serde_json::to_value(crate::web::api::openapi::document()).expect("the document");
        let listed: Vec<&str> = document["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("codes")
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        let ours: Vec<&str> = ApiErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
        // The catalogue says, for each code, its status, what it means and what to do.
        let catalogue = document["x-samgate-errors"]
            .as_array()
            .expect("x-samgate-errors");
        assert_eq!(catalogue.len(), ApiErrorCode::ALL.len());
        for (row, code) in catalogue.iter().zip(ApiErrorCode::ALL) {
            assert_eq!(row["code"], code.as_str());
            assert_eq!(row["status"], code.status().as_u16());
            for field in ["meaning", "action"] {
                let text = row[field].as_str().unwrap_or("");
                assert!(
                    text.len() > 10 && text.ends_with('.'),
                    "{}: {field} {text:?}",
                    code.as_str()
                );
            }
        }
        // The body a client gets has the documented required fields.
        let error = &document["components"]["schemas"]["Error"];
        assert_eq!(
            error["required"],
            serde_json::json!(["code", "message", "reference"])
        );
        assert_eq!(
            error["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
        assert_eq!(
            ApiErrorCode::CustomerNotFound.status().as_u16(),
            404,
            "customer_not_found is a 404"
        );
        assert_eq!(ApiErrorCode::CustomerPolicyBlocked.status().as_u16(), 403);
        assert_eq!(ApiErrorCode::CustomerUnavailable.status().as_u16(), 503);
    }

    #[test]
    fn every_reference_in_the_openapi_document_resolves() {
        fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                        found.push(target);
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let document =
            serde_json::to_value(crate::web::api::openapi::document()).expect("the document");
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 20, "{found:?}");
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(
                document.pointer(pointer).is_some(),
                "{target} does not resolve"
            );
        }
    }

    #[test]
    fn every_error_code_documented_on_a_route_is_one_the_route_table_names() {
        let document =
            serde_json::to_value(crate::web::api::openapi::document()).expect("the document");
        for route in crate::web::api::routes() {
            for method in route.methods {
                let operation =
                    &document["paths"][route.openapi_path()][method.as_str().to_ascii_lowercase()];
                let mut documented: Vec<String> = operation["responses"]
                    .as_object()
                    .expect("responses")
                    .values()
                    .filter_map(|r| r["headers"]["x-samgate-error"]["schema"]["enum"].as_array())
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect();
                documented.sort();
                let mut named: Vec<String> =
                    route.errors.iter().map(|c| c.as_str().to_owned()).collect();
                named.sort();
                assert_eq!(documented, named, "{method} {}", route.path);
            }
        }
    }
}
