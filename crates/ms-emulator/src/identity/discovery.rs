//! OpenID discovery documents and JWKS (protocol page §3.2–3.3): the issuer is exact for a tenant
//! and templated (`{tenantid}`) for `organizations`/`common`, and each JWKS key carries `issuer`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::errors::AadError;
use crate::state::{Authority, Shared};

fn unknown_tenant(shared: &Shared, segment: &str) -> Response {
    AadError::invalid_request(
        90002,
        format!("Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    )
    .response(shared, None)
}

/// (path segment used in endpoint URLs, v2 issuer, v1 issuer)
fn issuers(shared: &Shared, authority: &Authority, segment: &str) -> (String, String, String) {
    let base = &shared.base_url;
    match authority {
        Authority::Tenant(t) => (
            t.to_string(),
            format!("{base}/{t}/v2.0"),
            format!("https://sts.windows.net/{t}/"),
        ),
        _ => (
            segment.to_ascii_lowercase(),
            format!("{base}/{{tenantid}}/v2.0"),
            "https://sts.windows.net/{tenantid}/".to_owned(),
        ),
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn show_openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
) -> Response {
    let Some(authority) = shared.world().authority(&segment) else {
        return unknown_tenant(&shared, &segment);
    };
    let (t, issuer, _) = issuers(&shared, &authority, &segment);
    let base = &shared.base_url;
    Json(json!({
        "token_endpoint": format!("{base}/{t}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{t}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/graph/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{t}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
            "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{t}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

/// `GET /{tenant}/.well-known/openid-configuration` (v1 metadata).
pub async fn show_openid_configuration_v1(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
) -> Response {
    let Some(authority) = shared.world().authority(&segment) else {
        return unknown_tenant(&shared, &segment);
    };
    let (t, _, issuer) = issuers(&shared, &authority, &segment);
    let base = &shared.base_url;
    Json(json!({
        "token_endpoint": format!("{base}/{t}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{t}/discovery/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/{t}/oauth2/authorize"),
        "end_session_endpoint": format!("{base}/{t}/oauth2/logout"),
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub async fn list_signing_keys(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
) -> Response {
    let Some(authority) = shared.world().authority(&segment) else {
        return unknown_tenant(&shared, &segment);
    };
    let (_, issuer, _) = issuers(&shared, &authority, &segment);
    Json(shared.keys().jwks(&issuer)).into_response()
}

/// `GET /{tenant}/discovery/keys` (v1 key set).
pub async fn list_signing_keys_v1(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
) -> Response {
    let Some(authority) = shared.world().authority(&segment) else {
        return unknown_tenant(&shared, &segment);
    };
    let (_, _, issuer) = issuers(&shared, &authority, &segment);
    Json(shared.keys().jwks(&issuer)).into_response()
}
