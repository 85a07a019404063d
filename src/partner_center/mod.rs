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

/// One page of customers and the continuation token of the next, if any.
#[derive(Debug, Clone)]
pub struct CustomerPage {
    /// The customers of this page.
    pub customers: Vec<Customer>,
    /// `MS-ContinuationToken` of the next page (sent with `seekOperation=Next`).
    pub continuation: Option<String>,
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
    next: Option<NextLink>,
}

#[derive(Debug, Deserialize)]
struct NextLink {
    #[serde(default)]
    headers: Vec<LinkHeader>,
}

#[derive(Debug, Deserialize)]
struct LinkHeader {
    key: String,
    value: String,
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

    /// One page of the partner's customers: the first with `continuation = None`, the next ones
    /// with the token of the page before (`seekOperation=Next` + `MS-ContinuationToken`).
    pub async fn customers_page(
        &self,
        access_token: &SecretString,
        size: u32,
        continuation: Option<&str>,
    ) -> Result<CustomerPage, PartnerCenterError> {
        let size = size.clamp(1, 500);
        let mut request = match continuation {
            None => self.request(
                reqwest::Method::GET,
                &format!("v1/customers?size={size}"),
                access_token,
            ),
            Some(token) => {
                if !is_continuation_token(token) {
                    return Err(PartnerCenterError::Protocol(
                        "malformed continuation token".into(),
                    ));
                }
                self.request(
                    reqwest::Method::GET,
                    &format!("v1/customers?size={size}&seekOperation=Next"),
                    access_token,
                )
                .header("ms-continuationtoken", token)
            }
        };
        request = request.timeout(Duration::from_secs(30));
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
        let continuation = page
            .links
            .and_then(|l| l.next)
            .and_then(|next| {
                next.headers
                    .into_iter()
                    .find(|h| h.key.eq_ignore_ascii_case("ms-continuationtoken"))
            })
            .map(|h| h.value)
            .filter(|_| !page.items.is_empty());
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
            continuation,
        })
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
        let url = format!("{}/{path}", self.base.as_str().trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token.expose_secret())
            .header("accept", "application/json")
            .header("ms-correlationid", uuid::Uuid::new_v4().to_string())
            .header("ms-requestid", uuid::Uuid::new_v4().to_string())
            .timeout(Duration::from_secs(30))
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
