//! Typed Partner Center calls samgate makes itself (profiles at consent time), and Partner
//! Center's error model. Only this module knows Partner Center paths and payloads.
//! Reference: microsoft-protocols.md sections 4 and 5.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

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
    if status == 401 && invalid_token {
        return PartnerCenterError::TokenRejected { code: body.code };
    }
    PartnerCenterError::Status {
        status,
        code: body.code,
        retry_after,
    }
}
