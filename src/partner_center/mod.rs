//! Typed Partner Center calls samgate makes itself (profiles at consent time, customer pages,
//! the CPV app's consents in customer tenants), and Partner Center's error model. Only this
//! module knows Partner Center paths and payloads.
//! Reference: microsoft-protocols.md sections 4 and 5.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

use crate::config::AppConsentGrant;

/// Partner Center's error body (5.4): `code` may be a string or a number.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PartnerCenterErrorBody {
    /// The Partner Center error code, as text.
    #[serde(default, deserialize_with = "code_as_string")]
    pub code: Option<String>,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
}

fn code_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match value {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Why a Partner Center call failed.
#[derive(Debug, thiserror::Error)]
pub enum PartnerCenterError {
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"`: for a token minted a moment ago
    /// this means it lacks MFA (section 4); for a cached token it may simply have expired.
    #[error("Partner Center rejected the token (HTTP 401 invalid_token, code {code:?})")]
    TokenRejected {
        /// Partner Center's code, e.g. 900421.
        code: Option<String>,
    },
    /// 400/403 carrying the directory's `Authorization_RequestDenied` ("Insufficient privileges
    /// to complete the operation") inside the description: the partner's GDAP roles in that
    /// customer do not allow the operation (consenting an app needs Global, Privileged Role or
    /// Cloud Application Administrator).
    #[error("Partner Center refused: insufficient GDAP privileges (HTTP {status}, code {code:?})")]
    InsufficientPrivileges {
        /// The HTTP status.
        status: u16,
        /// Partner Center's code.
        code: Option<String>,
    },
    /// Any other error status.
    #[error("Partner Center answered HTTP {status} (code {code:?})")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Partner Center's code.
        code: Option<String>,
        /// `Retry-After` seconds on 429/503.
        retry_after: Option<u64>,
    },
    /// Unreachable or timed out.
    #[error("Partner Center is unreachable: {0}")]
    Unreachable(String),
    /// Not the documented JSON.
    #[error("unexpected answer from Partner Center: {0}")]
    Protocol(String),
}

/// `GET /v1/profiles/organization` (5.6).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationProfile {
    /// The partner's organisation name.
    #[serde(default)]
    pub company_name: Option<String>,
    /// The partner's tenant id.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The default domain.
    #[serde(default)]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MpnProfile {
    #[serde(default)]
    mpn_id: Option<String>,
}

/// One customer of a partner, as `GET /v1/customers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// The customer's tenant id.
    pub tenant_id: Uuid,
    /// Company name.
    pub company_name: String,
    /// Default domain.
    pub domain: String,
}

/// One page of customers and where the next one is, if any.
#[derive(Debug, Clone)]
pub struct CustomerPage {
    /// The customers of this page.
    pub customers: Vec<Customer>,
    /// `links.next` of this page, to be followed as sent.
    pub next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
struct CustomerCollection {
    #[serde(default)]
    items: Vec<CustomerItem>,
    #[serde(default)]
    links: Option<CollectionLinks>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerItem {
    id: Uuid,
    #[serde(default)]
    company_profile: Option<CompanyProfile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompanyProfile {
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    domain: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CollectionLinks {
    #[serde(default)]
    next: Option<NextPage>,
}

/// Where the next page of a Partner Center collection is: its `links.next` (`uri` and `headers`,
/// normally `MS-ContinuationToken`), followed as Microsoft's SDK does, verbatim. The token is opaque.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NextPage {
    uri: String,
    #[serde(default)]
    headers: Vec<LinkHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct LinkHeader {
    key: String,
    value: String,
}

impl NextPage {
    /// The `MS-ContinuationToken` the link carries, if any.
    pub fn continuation_token(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case("ms-continuationtoken"))
            .map(|h| h.value.as_str())
    }

    /// The URL to request under `base`. Documented links are relative to the API root, with or
    /// without the `/v1` prefix (`/v1/customers?…`, `/customers?…`, `customers?…`); an absolute
    /// link is followed only on `base`'s own origin, so a forged link cannot send the partner's
    /// token elsewhere.
    pub fn url(&self, base: &Url) -> Result<Url, PartnerCenterError> {
        let refuse = |why: &str| PartnerCenterError::Protocol(format!("next link {why}"));
        if self.uri.bytes().any(|b| b.is_ascii_control() || b == b'\\') || self.uri.len() > 8192 {
            return Err(refuse("is malformed"));
        }
        if self.uri.starts_with("//") {
            return Err(refuse("points outside Partner Center"));
        }
        if let Ok(absolute) = Url::parse(&self.uri) {
            if absolute.origin() != base.origin() {
                return Err(refuse("points outside Partner Center"));
            }
            return Ok(absolute);
        }
        let root = base.as_str().trim_end_matches('/');
        let path = self.uri.trim_start_matches('/');
        let path = if path.starts_with("v1/") {
            path.to_owned()
        } else {
            format!("v1/{path}")
        };
        let url = Url::parse(&format!("{root}/{path}")).map_err(|_| refuse("is malformed"))?;
        if url.origin() != base.origin() {
            return Err(refuse("points outside Partner Center"));
        }
        Ok(url)
    }

    /// The link's headers to send: Partner Center's own (`MS-…`, except the ids samgate sets per
    /// request), values that a header can carry.
    fn headers(&self) -> Result<Vec<(&str, &str)>, PartnerCenterError> {
        let mut out = Vec::new();
        for h in &self.headers {
            let key = h.key.to_ascii_lowercase();
            if !key.starts_with("ms-") || key == "ms-correlationid" || key == "ms-requestid" {
                continue;
            }
            if reqwest::header::HeaderName::from_bytes(h.key.as_bytes()).is_err()
                || !is_continuation_token(&h.value)
            {
                return Err(PartnerCenterError::Protocol(format!(
                    "next link header {} cannot be sent",
                    h.key
                )));
            }
            out.push((h.key.as_str(), h.value.as_str()));
        }
        Ok(out)
    }
}

/// What `POST …/applicationconsents` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentGranted {
    /// Created now (200/201).
    Created,
    /// It existed already (409): for samgate the same outcome.
    AlreadyExists,
}

/// What `DELETE …/applicationconsents/{appId}` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentRemoved {
    /// Deleted now.
    Removed,
    /// There was none (404): for samgate the same outcome.
    Absent,
}

/// Whether a continuation token can be sent back as a header. Tokens are opaque: documented
/// seek tokens hold `,` `/` `+` `=` and more (get-invoiceline-items), so only what cannot travel
/// in a header is refused: control characters (CR and LF above all), non-ASCII, over 8 KiB.
pub fn is_continuation_token(text: &str) -> bool {
    !text.is_empty() && text.len() <= 8192 && text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// A Partner Center URL any caller may ask: without a token Partner Center answers 401 with
/// `WWW-Authenticate` (protocol page §5.4), so an answer proves DNS, TCP, TLS and HTTP to it.
/// samgate's app has no app-only Partner Center access to prove more (§1.1: a SAM app carries
/// no application permissions).
pub fn reachability_url(base: &Url) -> Result<Url, url::ParseError> {
    Url::parse(&format!(
        "{}/v1/profiles/organization",
        base.as_str().trim_end_matches('/')
    ))
}

/// Partner Center client for samgate's own calls.
#[derive(Debug, Clone)]
pub struct PartnerCenterClient {
    http: reqwest::Client,
    base: Url,
}

impl PartnerCenterClient {
    /// A client for the Partner Center at `base` (e.g. `https://api.partnercenter.microsoft.com`).
    pub fn new(http: reqwest::Client, base: Url) -> Self {
        Self { http, base }
    }

    /// The organisation profile of the partner whose token this is.
    pub async fn organization_profile(
        &self,
        access_token: &SecretString,
    ) -> Result<OrganizationProfile, PartnerCenterError> {
        self.get_json("v1/profiles/organization", access_token)
            .await
    }

    /// The partner's MPN (Partner) id, if Partner Center has one.
    pub async fn mpn_id(
        &self,
        access_token: &SecretString,
    ) -> Result<Option<String>, PartnerCenterError> {
        let profile: MpnProfile = self.get_json("v1/profiles/mpn", access_token).await?;
        Ok(profile.mpn_id)
    }

    /// One page of the partner's customers: the first with `next = None`, the next ones by
    /// following the `links.next` of the page before.
    pub async fn customers_page(
        &self,
        access_token: &SecretString,
        size: u32,
        next: Option<&NextPage>,
    ) -> Result<CustomerPage, PartnerCenterError> {
        let size = size.clamp(1, 500);
        let request = match next {
            None => self.request(
                reqwest::Method::GET,
                &format!("v1/customers?size={size}"),
                access_token,
            ),
            Some(link) => {
                let mut request =
                    self.request_url(reqwest::Method::GET, link.url(&self.base)?, access_token);
                for (key, value) in link.headers()? {
                    request = request.header(key, value);
                }
                request
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| PartnerCenterError::Unreachable(e.without_url().to_string()))?;
        if response.status().as_u16() != 200 {
            return Err(error_from(response).await);
        }
        let page: CustomerCollection = response
            .json()
            .await
            .map_err(|e| PartnerCenterError::Protocol(e.without_url().to_string()))?;
        // An empty page ends the list whatever its links say, and a link to the page just read
        // would loop for ever.
        let next_link = page
            .links
            .and_then(|l| l.next)
            .filter(|link| !page.items.is_empty() && Some(link) != next);
        Ok(CustomerPage {
            customers: page
                .items
                .into_iter()
                .map(|item| {
                    let profile = item.company_profile.unwrap_or_default();
                    Customer {
                        tenant_id: item.id,
                        company_name: profile.company_name.unwrap_or_default(),
                        domain: profile.domain.unwrap_or_default(),
                    }
                })
                .collect(),
            next: next_link,
        })
    }

    /// Every customer tenant id of the partner whose token this is, page after page.
    pub async fn customer_ids(
        &self,
        access_token: &SecretString,
    ) -> Result<Vec<Uuid>, PartnerCenterError> {
        let mut ids = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .customers_page(access_token, 500, next.as_ref())
                .await?;
            ids.extend(page.customers.iter().map(|c| c.tenant_id));
            match page.next {
                Some(link) => next = Some(link),
                None => return Ok(ids),
            }
        }
    }

    /// Consents the CPV app (`app_id`) in the customer tenant with `grants`
    /// (<https://learn.microsoft.com/partner-center/developer/create-application-consent>).
    pub async fn grant_application_consent(
        &self,
        access_token: &SecretString,
        customer: Uuid,
        app_id: Uuid,
        display_name: &str,
        grants: &[AppConsentGrant],
    ) -> Result<ConsentGranted, PartnerCenterError> {
        let body = serde_json::json!({
            "applicationId": app_id,
            "displayName": display_name,
            "applicationGrants": grants
                .iter()
                .map(|g| serde_json::json!({
                    "enterpriseApplicationId": g.enterprise_application_id,
                    "scope": g.scopes.join(","),
                }))
                .collect::<Vec<_>>(),
        });
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("v1/customers/{customer}/applicationconsents"),
                access_token,
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| PartnerCenterError::Unreachable(e.without_url().to_string()))?;
        match response.status().as_u16() {
            200 | 201 => Ok(ConsentGranted::Created),
            409 => Ok(ConsentGranted::AlreadyExists),
            _ => Err(error_from(response).await),
        }
    }

    /// Removes the CPV app's consent from the customer tenant
    /// (<https://learn.microsoft.com/partner-center/developer/remove-application-consent>).
    pub async fn remove_application_consent(
        &self,
        access_token: &SecretString,
        customer: Uuid,
        app_id: Uuid,
    ) -> Result<ConsentRemoved, PartnerCenterError> {
        let response = self
            .request(
                reqwest::Method::DELETE,
                &format!("v1/customers/{customer}/applicationconsents/{app_id}"),
                access_token,
            )
            .send()
            .await
            .map_err(|e| PartnerCenterError::Unreachable(e.without_url().to_string()))?;
        match response.status().as_u16() {
            200 | 204 => Ok(ConsentRemoved::Removed),
            404 => Ok(ConsentRemoved::Absent),
            _ => Err(error_from(response).await),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: &SecretString,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}/{path}", self.base.as_str().trim_end_matches('/'));
        self.request_url(method, url, access_token)
    }

    fn request_url(
        &self,
        method: reqwest::Method,
        url: impl reqwest::IntoUrl,
        access_token: &SecretString,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(access_token.expose_secret())
            .header("accept", "application/json")
            .header("ms-correlationid", Uuid::new_v4().to_string())
            .header("ms-requestid", Uuid::new_v4().to_string())
            .timeout(Duration::from_secs(30))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        access_token: &SecretString,
    ) -> Result<T, PartnerCenterError> {
        let response = self
            .request(reqwest::Method::GET, path, access_token)
            .send()
            .await
            .map_err(|e| PartnerCenterError::Unreachable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if status == 200 {
            return response
                .json()
                .await
                .map_err(|e| PartnerCenterError::Protocol(e.without_url().to_string()));
        }
        Err(error_from(response).await)
    }
}

/// Reads a Partner Center error response (defensively: the body may be empty or another shape).
pub async fn error_from(response: reqwest::Response) -> PartnerCenterError {
    let status = response.status().as_u16();
    let invalid_token = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("invalid_token")));
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body: PartnerCenterErrorBody = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    // Partner Center's MFA enforcement answers 401 "with error code 900421" (CSP technical
    // changes, 2026), with or without `WWW-Authenticate: Bearer error="invalid_token"` (the 2019
    // page showed the header and no body); either sign means the token was refused.
    let mfa_code = body.code.as_deref() == Some("900421");
    if status == 401 && (invalid_token || mfa_code) {
        return PartnerCenterError::TokenRejected { code: body.code };
    }
    // The directory's refusal travels as text inside Partner Center's description (an embedded
    // `{"odata.error":{"code":"Authorization_RequestDenied",…}}`); its code is the signal.
    let directory_denied = body
        .description
        .as_deref()
        .is_some_and(|d| d.contains("Authorization_RequestDenied"));
    if matches!(status, 400 | 403) && directory_denied {
        return PartnerCenterError::InsufficientPrivileges {
            status,
            code: body.code,
        };
    }
    PartnerCenterError::Status {
        status,
        code: body.code,
        retry_after,
    }
}

#[cfg(test)]
mod continuation_tests {
    use super::is_continuation_token;

    #[test]
    fn continuation_tokens_are_opaque_except_for_what_a_header_cannot_carry() {
        for documented in [
            "a1b2c3==",
            "eyJ0b2tlbiI6IjEyMyJ9,a/b+c=",
            "+RID:~abc==#RT:1#TRC:10#ISV:2#IEO:65551#QCF:8#FPC:AgE=",
            "pageIndex=2,size=100",
        ] {
            assert!(is_continuation_token(documented), "{documented}");
        }
        for bad in ["", "a\r\nX-Injected: 1", "tab\there", "ümlaut"] {
            assert!(!is_continuation_token(bad), "{bad:?}");
        }
        assert!(!is_continuation_token(&"a".repeat(8193)));
    }
}

#[cfg(test)]
mod next_page_tests {
    use super::*;

    fn link(uri: &str, headers: &[(&str, &str)]) -> NextPage {
        NextPage {
            uri: uri.to_owned(),
            headers: headers
                .iter()
                .map(|(key, value)| LinkHeader {
                    key: (*key).to_owned(),
                    value: (*value).to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn next_links_are_resolved_with_or_without_the_v1_prefix_as_documented() {
        let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
        for uri in [
            "/v1/customers?size=500&seekOperation=Next",
            "/customers?size=500&seekOperation=Next",
            "customers?size=500&seekOperation=Next",
            "https://api.partnercenter.microsoft.com/v1/customers?size=500&seekOperation=Next",
        ] {
            assert_eq!(
                link(uri, &[]).url(&base).expect("resolves").as_str(),
                "https://api.partnercenter.microsoft.com/v1/customers?size=500&seekOperation=Next",
                "{uri}"
            );
        }
        // A base with a path (a gateway in front of Partner Center) keeps it.
        let proxied = Url::parse("http://127.0.0.1:8080/pc/").expect("url");
        assert_eq!(
            link("/v1/customers?x=1", &[])
                .url(&proxied)
                .expect("resolves")
                .as_str(),
            "http://127.0.0.1:8080/pc/v1/customers?x=1"
        );
    }

    #[test]
    fn a_next_link_to_another_origin_is_refused_so_the_token_stays_with_partner_center() {
        let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
        for uri in [
            "https://attacker.example/v1/customers",
            "//attacker.example/v1/customers",
            "http://api.partnercenter.microsoft.com/v1/customers",
            "https://api.partnercenter.microsoft.com:8443/v1/customers",
            "/v1/customers\r\nHost: attacker.example",
        ] {
            assert!(
                matches!(
                    link(uri, &[]).url(&base),
                    Err(PartnerCenterError::Protocol(_))
                ),
                "{uri:?}"
            );
        }
    }

    #[test]
    fn only_partner_centers_own_link_headers_are_sent_and_tokens_stay_opaque() {
        let documented = "cid:+a/B=c,d;e%20f";
        let next = link(
            "/v1/customers",
            &[
                ("MS-ContinuationToken", documented),
                ("Authorization", "Bearer stolen"),
                ("MS-RequestId", "fixed"),
                ("Host", "attacker.example"),
            ],
        );
        assert_eq!(next.continuation_token(), Some(documented));
        assert_eq!(
            next.headers().expect("sendable"),
            vec![("MS-ContinuationToken", documented)]
        );
        let bad = link("/v1/customers", &[("MS-ContinuationToken", "a\r\nb")]);
        assert!(bad.headers().is_err());
    }
}

#[cfg(test)]
mod recorded_tests;
