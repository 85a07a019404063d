//! The two Partner Center calls offboarding makes: list the partner's customers (paged with
//! `MS-ContinuationToken`) and delete the CPV app's consent in each
//! (<https://learn.microsoft.com/partner-center/developer/remove-application-consent>).
//! They belong in `partner_center` (the module that owns Partner Center paths); they live here
//! until that module grows them, because this change may not edit it.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use crate::partner_center::{PartnerCenterError, error_from};

const PAGE_SIZE: u32 = 500;

#[derive(Debug, Deserialize)]
struct CustomerPage {
    #[serde(default)]
    items: Vec<CustomerItem>,
    #[serde(default)]
    links: Option<PageLinks>,
}

#[derive(Debug, Deserialize)]
struct CustomerItem {
    id: Uuid,
}

#[derive(Debug, Deserialize)]
struct PageLinks {
    next: Option<NextLink>,
}

#[derive(Debug, Deserialize)]
struct NextLink {
    uri: String,
    #[serde(default)]
    headers: Vec<LinkHeader>,
}

#[derive(Debug, Deserialize)]
struct LinkHeader {
    key: String,
    value: String,
}

fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &SecretString,
) -> reqwest::RequestBuilder {
    http.request(method, url)
        .bearer_auth(token.expose_secret())
        .header("accept", "application/json")
        .header("ms-correlationid", Uuid::new_v4().to_string())
        .header("ms-requestid", Uuid::new_v4().to_string())
        .timeout(Duration::from_secs(60))
}

/// Every customer tenant of the partner whose token this is.
pub async fn list_customers(
    http: &reqwest::Client,
    base: &url::Url,
    token: &SecretString,
) -> Result<Vec<Uuid>, PartnerCenterError> {
    let base = base.as_str().trim_end_matches('/');
    let mut customers = Vec::new();
    let mut next: Option<NextLink> = None;
    loop {
        let builder = match &next {
            None => request(
                http,
                reqwest::Method::GET,
                format!("{base}/v1/customers?size={PAGE_SIZE}"),
                token,
            ),
            Some(link) => {
                // The link is relative to the API root ("/v1/customers?…" or "/customers?…").
                let path = link.uri.trim_start_matches('/');
                let path = if path.starts_with("v1/") {
                    path.to_owned()
                } else {
                    format!("v1/{path}")
                };
                let mut builder =
                    request(http, reqwest::Method::GET, format!("{base}/{path}"), token);
                for header in &link.headers {
                    builder = builder.header(&header.key, &header.value);
                }
                builder
            }
        };
        let response = builder
            .send()
            .await
            .map_err(|e| PartnerCenterError::Unreachable(e.without_url().to_string()))?;
        if response.status().as_u16() != 200 {
            return Err(error_from(response).await);
        }
        let page: CustomerPage = response
            .json()
            .await
            .map_err(|e| PartnerCenterError::Protocol(e.without_url().to_string()))?;
        let empty = page.items.is_empty();
        customers.extend(page.items.into_iter().map(|c| c.id));
        next = page.links.and_then(|l| l.next);
        if next.is_none() || empty {
            return Ok(customers);
        }
    }
}

/// Whether the consent was there to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Deleted now.
    Removed,
    /// Already gone (404).
    Absent,
}

/// Deletes the app's consent in one customer tenant.
pub async fn remove_app_consent(
    http: &reqwest::Client,
    base: &url::Url,
    token: &SecretString,
    customer: Uuid,
    app_id: Uuid,
) -> Result<Removal, PartnerCenterError> {
    let url = format!(
        "{}/v1/customers/{customer}/applicationconsents/{app_id}",
        base.as_str().trim_end_matches('/')
    );
    let response = request(http, reqwest::Method::DELETE, url, token)
        .send()
        .await
        .map_err(|e| PartnerCenterError::Unreachable(e.without_url().to_string()))?;
    match response.status().as_u16() {
        200 | 204 => Ok(Removal::Removed),
        404 => Ok(Removal::Absent),
        _ => Err(error_from(response).await),
    }
}
