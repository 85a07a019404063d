//! Typed Microsoft Graph calls samgate makes itself: the partner's GDAP relationships
//! (`tenantRelationships/delegatedAdminRelationships`, microsoft-protocols.md §6). Only this
//! module knows those Graph paths and payloads. `@odata.nextLink` is followed as Graph gives it,
//! but only while it stays under the configured Graph base URL.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// 401: Graph does not accept the token (expired early, revoked, `InvalidAuthenticationToken`):
    /// drop the cached token and try once more with a fresh one.
    #[error("Graph refused the token (HTTP 401, {code:?})")]
    TokenRejected {
        /// Graph's `error.code`.
        code: Option<String>,
    },
    /// 403: the partner's token may not read this (missing permission or role).
    #[error("Graph refused access (HTTP {status}, {code:?})")]
    Forbidden {
        /// HTTP status.
        status: u16,
        /// Graph's `error.code`.
        code: Option<String>,
    },
    /// Another error status.
    #[error("Graph answered HTTP {status} ({code:?})")]
    Status {
        /// HTTP status.
        status: u16,
        /// Graph's `error.code`.
        code: Option<String>,
    },
    /// Unreachable or timed out.
    #[error("Graph is unreachable: {0}")]
    Unreachable(String),
    /// Not the documented JSON, or a next link pointing elsewhere.
    #[error("unexpected answer from Graph: {0}")]
    Protocol(String),
}

/// One GDAP relationship between the partner and a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatedAdminRelationship {
    /// The customer's tenant.
    pub customer_tenant_id: Uuid,
    /// The customer's display name.
    pub customer_name: String,
    /// Graph's status (`active`, `expiring`, `expired`, `terminated`, …).
    pub status: String,
    /// Unified role definition ids.
    pub roles: Vec<Uuid>,
    /// When it ends (or ended).
    pub ends_at: Option<OffsetDateTime>,
}

impl DelegatedAdminRelationship {
    /// Whether the relationship gives the partner's users roles now.
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "active" | "expiring") && !self.roles.is_empty()
    }
}

/// One page of relationships and the link of the next, if any.
#[derive(Debug, Clone)]
pub struct RelationshipPage {
    /// The relationships of this page.
    pub relationships: Vec<DelegatedAdminRelationship>,
    /// `@odata.nextLink`, checked to stay under the Graph base URL.
    pub next: Option<Url>,
}

#[derive(Deserialize)]
struct Collection {
    #[serde(default)]
    value: Vec<Item>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(default)]
    customer: Option<ItemCustomer>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    access_details: Option<AccessDetails>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    end_date_time: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemCustomer {
    tenant_id: Uuid,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessDetails {
    #[serde(default)]
    unified_roles: Vec<UnifiedRole>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnifiedRole {
    role_definition_id: Uuid,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
}

/// A Graph URL any caller may ask: without a token Graph answers 401
/// `InvalidAuthenticationToken`, so an answer proves DNS, TCP, TLS and HTTP to Graph.
pub fn reachability_url(base: &Url) -> Result<Url, url::ParseError> {
    Url::parse(&format!(
        "{}/v1.0/organization",
        base.as_str().trim_end_matches('/')
    ))
}

/// Graph client for samgate's own calls.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: Url,
}

impl GraphClient {
    /// A client for the Graph at `base` (e.g. `https://graph.microsoft.com`).
    pub fn new(http: reqwest::Client, base: Url) -> Self {
        Self { http, base }
    }

    fn first_page_url(&self) -> Result<Url, GraphError> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!(
            "{base}/v1.0/tenantRelationships/delegatedAdminRelationships?$top=300"
        ))
        .map_err(|e| GraphError::Protocol(e.to_string()))
    }

    /// Whether `link` is under the configured Graph base URL (same origin and path prefix).
    fn is_ours(&self, link: &Url) -> bool {
        link.origin() == self.base.origin()
            && link
                .path()
                .starts_with(self.base.path().trim_end_matches('/'))
    }

    /// A page of the partner's GDAP relationships: the first with `next = None`, then the
    /// `next` of the page before.
    pub async fn relationships_page(
        &self,
        access_token: &SecretString,
        next: Option<&Url>,
    ) -> Result<RelationshipPage, GraphError> {
        let url = match next {
            Some(link) => link.clone(),
            None => self.first_page_url()?,
        };
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token.expose_secret())
            .header("accept", "application/json")
            .header("client-request-id", Uuid::new_v4().to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| GraphError::Unreachable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            let code = response
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok())
                .and_then(|b| b.error)
                .and_then(|e| e.code);
            return Err(match status {
                401 => GraphError::TokenRejected { code },
                403 => GraphError::Forbidden { status, code },
                _ => GraphError::Status { status, code },
            });
        }
        let page: Collection = response
            .json()
            .await
            .map_err(|e| GraphError::Protocol(e.without_url().to_string()))?;
        let next = match page.next_link {
            None => None,
            Some(link) => {
                let url = Url::parse(&link)
                    .map_err(|_| GraphError::Protocol("a nextLink that is not a URL".into()))?;
                if !self.is_ours(&url) {
                    return Err(GraphError::Protocol(
                        "a nextLink outside the configured Graph URL".into(),
                    ));
                }
                Some(url)
            }
        };
        Ok(RelationshipPage {
            relationships: page
                .value
                .into_iter()
                .filter_map(|item| {
                    let customer = item.customer?;
                    Some(DelegatedAdminRelationship {
                        customer_tenant_id: customer.tenant_id,
                        customer_name: customer.display_name.unwrap_or_default(),
                        status: item.status.unwrap_or_default(),
                        roles: item
                            .access_details
                            .map(|a| {
                                a.unified_roles
                                    .into_iter()
                                    .map(|r| r.role_definition_id)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        ends_at: item.end_date_time,
                    })
                })
                .collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_must_stay_under_the_configured_graph_url() {
        let client = GraphClient::new(
            reqwest::Client::new(),
            Url::parse("https://graph.example/graph").expect("url"),
        );
        let ours = Url::parse("https://graph.example/graph/v1.0/x?$skipToken=a").expect("url");
        assert!(client.is_ours(&ours));
        for elsewhere in [
            "https://evil.example/graph/v1.0/x",
            "http://graph.example/graph/v1.0/x",
            "https://graph.example/other/v1.0/x",
            "https://graph.example:8443/graph/v1.0/x",
        ] {
            let url = Url::parse(elsewhere).expect("url");
            assert!(!client.is_ours(&url), "{elsewhere}");
        }
    }

    #[test]
    fn a_relationship_is_active_only_with_an_active_status_and_a_role() {
        let mut rel = DelegatedAdminRelationship {
            customer_tenant_id: Uuid::nil(),
            customer_name: String::new(),
            status: "active".into(),
            roles: vec![Uuid::nil()],
            ends_at: None,
        };
        assert!(rel.is_active());
        rel.status = "expiring".into();
        assert!(rel.is_active());
        for status in [
            "expired",
            "terminated",
            "approvalPending",
            "created",
            "terminating",
        ] {
            rel.status = status.into();
            assert!(!rel.is_active(), "{status}");
        }
        rel.status = "active".into();
        rel.roles.clear();
        assert!(!rel.is_active());
    }
}

#[cfg(test)]
mod recorded_tests;
