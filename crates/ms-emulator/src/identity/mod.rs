//! The Microsoft identity platform (login.microsoftonline.com, v2.0 endpoints) under `/{tenant}/…`.
//! `{tenant}` is a tenant GUID, a verified domain, `organizations` or `common`.

pub mod assertion;
pub mod authorize;
pub mod customer_access;
pub mod discovery;
pub mod errors;
pub mod pages;
pub mod token;
pub mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::Shared;

/// Routes of the identity platform.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::show_openid_configuration),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(discovery::show_openid_configuration_v1),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            get(discovery::list_signing_keys),
        )
        .route(
            "/{tenant}/discovery/keys",
            get(discovery::list_signing_keys_v1),
        )
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(authorize::start_authorize),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(token::issue_token))
        .route("/{tenant}/login", post(authorize::submit_credentials))
        .route("/{tenant}/SAS/ProcessAuth", post(authorize::submit_mfa))
        .route("/{tenant}/Consent/Set", post(authorize::submit_consent))
        .route("/error", get(authorize::show_error_code))
}
