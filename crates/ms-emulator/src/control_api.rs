//! The HTTP control API under `/_emulator/…` (JSON; mounted only when enabled). Each route calls
//! the same [`Control`] method a Rust test would.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::{Control, Fault};
use crate::seed::{
    AppSeed, CustomerPolicy, MfaState, MissingConsentError, RelationshipSeed, RelationshipStatus,
    TenantSeed, UserSeed,
};
use crate::state::{Shared, lock};

/// Routes of the control API.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/clock", get(show_clock))
        .route("/_emulator/clock/advance", post(advance_clock))
        .route("/_emulator/users/{upn}/revoke", post(revoke_refresh_tokens))
        .route("/_emulator/users/{upn}/mfa", post(set_user_mfa))
        .route("/_emulator/users/{upn}/require-mfa", post(require_new_mfa))
        .route("/_emulator/users/{upn}/disable", post(disable_user))
        .route("/_emulator/users/{upn}/enable", post(enable_user))
        .route("/_emulator/users/{upn}/mfa-code", get(show_mfa_code))
        .route("/_emulator/apps", post(add_app))
        .route(
            "/_emulator/apps/{client_id}/expire-secret",
            post(expire_client_secret),
        )
        .route("/_emulator/tenants", get(list_tenants).post(add_tenant))
        .route("/_emulator/tenants/{id}/users", post(add_user))
        .route("/_emulator/tenants/{id}/customers", post(add_customer))
        .route(
            "/_emulator/tenants/{id}/generated-customers",
            post(add_generated_customers),
        )
        .route(
            "/_emulator/tenants/{id}/policy",
            post(update_customer_policy),
        )
        .route("/_emulator/relationships", post(add_relationship))
        .route(
            "/_emulator/relationships/{partner}/{customer}",
            post(update_relationship),
        )
        .route(
            "/_emulator/consents",
            post(grant_consent).delete(remove_consent),
        )
        .route("/_emulator/settings", post(update_settings))
        .route("/_emulator/keys/rotate", post(rotate_keys))
        .route("/_emulator/faults", post(add_fault).delete(clear_faults))
        .route(
            "/_emulator/counters",
            get(show_counters).delete(reset_counters),
        )
        .route("/_emulator/requests", get(list_requests))
        .route("/_emulator/requests", delete(clear_requests))
        .route("/_emulator/refresh-tokens", get(list_refresh_tokens))
}

fn control(shared: Arc<Shared>) -> Control {
    Control { shared }
}

fn bad_request(err: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": err.to_string() })),
    )
        .into_response()
}

fn ok() -> Response {
    Json(json!({ "ok": true })).into_response()
}

async fn show_clock(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Json(json!({ "now": now })).into_response()
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    seconds: u64,
    #[serde(default)]
    days: u64,
}

async fn advance_clock(State(shared): State<Arc<Shared>>, Json(a): Json<Advance>) -> Response {
    control(shared.clone()).advance_clock(Duration::from_secs(a.seconds + a.days * 86_400));
    show_clock(State(shared)).await
}

async fn revoke_refresh_tokens(
    State(shared): State<Arc<Shared>>,
    Path(upn): Path<String>,
) -> Response {
    control(shared).revoke_refresh_tokens(&upn);
    ok()
}

#[derive(Deserialize)]
struct SetMfa {
    mfa: MfaState,
}

async fn set_user_mfa(
    State(shared): State<Arc<Shared>>,
    Path(upn): Path<String>,
    Json(m): Json<SetMfa>,
) -> Response {
    control(shared).set_user_mfa(&upn, m.mfa);
    ok()
}

async fn require_new_mfa(State(shared): State<Arc<Shared>>, Path(upn): Path<String>) -> Response {
    control(shared).require_new_mfa(&upn);
    ok()
}

async fn disable_user(State(shared): State<Arc<Shared>>, Path(upn): Path<String>) -> Response {
    control(shared).disable_user(&upn);
    ok()
}

async fn enable_user(State(shared): State<Arc<Shared>>, Path(upn): Path<String>) -> Response {
    control(shared).enable_user(&upn);
    ok()
}

async fn show_mfa_code(State(shared): State<Arc<Shared>>, Path(upn): Path<String>) -> Response {
    Json(json!({ "code": control(shared).mfa_code(&upn) })).into_response()
}

async fn add_app(State(shared): State<Arc<Shared>>, Json(app): Json<AppSeed>) -> Response {
    match control(shared).add_app(app) {
        Ok(()) => ok(),
        Err(e) => bad_request(e),
    }
}

async fn expire_client_secret(
    State(shared): State<Arc<Shared>>,
    Path(client_id): Path<Uuid>,
) -> Response {
    control(shared).expire_client_secret(client_id);
    ok()
}

async fn list_tenants(State(shared): State<Arc<Shared>>) -> Response {
    let w = shared.world();
    let tenants: Vec<Value> = w
        .tenants
        .values()
        .map(|t| {
            json!({
                "id": t.id, "display_name": t.display_name, "default_domain": t.default_domain,
                "is_partner": t.is_partner, "mpn_id": t.mpn_id, "customers": t.customers,
                "conditional_access": t.conditional_access, "missing_consent_error": t.missing_consent_error,
                "users": w.users.values().filter(|u| u.tenant == t.id).map(|u| json!({
                    "oid": u.oid, "upn": u.upn, "display_name": u.display_name, "mfa": u.mfa, "disabled": u.disabled,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "tenants": tenants })).into_response()
}

async fn add_tenant(State(shared): State<Arc<Shared>>, Json(t): Json<TenantSeed>) -> Response {
    match control(shared).add_tenant(t) {
        Ok(()) => ok(),
        Err(e) => bad_request(e),
    }
}

async fn add_user(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<Uuid>,
    Json(u): Json<UserSeed>,
) -> Response {
    match control(shared).add_user(id, u) {
        Ok(()) => ok(),
        Err(e) => bad_request(e),
    }
}

async fn add_customer(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<Uuid>,
    Json(t): Json<TenantSeed>,
) -> Response {
    match control(shared).add_customer(id, t) {
        Ok(()) => ok(),
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct GenerateCustomers {
    count: usize,
}

async fn add_generated_customers(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<Uuid>,
    Json(g): Json<GenerateCustomers>,
) -> Response {
    match control(shared).add_customers(id, g.count) {
        Ok(ids) => Json(json!({ "customers": ids })).into_response(),
        Err(e) => bad_request(e),
    }
}

/// `{"conditional_access": "block" | null, "missing_consent_error": "app_not_found"}`; a field
/// left out is left as it is.
#[derive(Deserialize)]
struct CustomerPolicyBody {
    #[serde(default, deserialize_with = "present")]
    conditional_access: Option<Option<CustomerPolicy>>,
    #[serde(default)]
    missing_consent_error: Option<MissingConsentError>,
}

/// Tells `"field": null` (`Some(None)`) from a missing field (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

async fn update_customer_policy(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<Uuid>,
    Json(p): Json<CustomerPolicyBody>,
) -> Response {
    if !shared.world().tenants.contains_key(&id) {
        return bad_request(format!("unknown tenant {id}"));
    }
    let c = control(shared);
    if let Some(policy) = p.conditional_access {
        c.set_customer_policy(id, policy);
    }
    if let Some(error) = p.missing_consent_error {
        c.set_missing_consent_error(id, error);
    }
    ok()
}

/// `{"status": "terminated", "end_date_time": "2030-01-01T00:00:00Z", "roles": [...]}`, each optional.
#[derive(Deserialize)]
struct RelationshipUpdate {
    #[serde(default)]
    status: Option<RelationshipStatus>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    end_date_time: Option<time::OffsetDateTime>,
    #[serde(default)]
    roles: Option<Vec<Uuid>>,
}

async fn update_relationship(
    State(shared): State<Arc<Shared>>,
    Path((partner, customer)): Path<(Uuid, Uuid)>,
    Json(u): Json<RelationshipUpdate>,
) -> Response {
    let exists = shared
        .world()
        .relationships
        .iter()
        .any(|r| r.partner == partner && r.customer == customer);
    if !exists {
        return bad_request(format!("no relationship {partner} → {customer}"));
    }
    let c = control(shared);
    if let Some(status) = u.status {
        c.set_relationship_status(partner, customer, status);
    }
    if let Some(end) = u.end_date_time {
        c.set_relationship_end(partner, customer, end);
    }
    if let Some(roles) = u.roles {
        c.set_relationship_roles(partner, customer, roles);
    }
    ok()
}

async fn add_relationship(
    State(shared): State<Arc<Shared>>,
    Json(r): Json<RelationshipSeed>,
) -> Response {
    match control(shared).add_relationship(r) {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct ConsentBody {
    tenant: Uuid,
    client_id: Uuid,
}

async fn grant_consent(State(shared): State<Arc<Shared>>, Json(c): Json<ConsentBody>) -> Response {
    control(shared).grant_app_consent(c.tenant, c.client_id);
    ok()
}

async fn remove_consent(
    State(shared): State<Arc<Shared>>,
    Query(c): Query<ConsentBody>,
) -> Response {
    control(shared).remove_app_consent(c.tenant, c.client_id);
    ok()
}

#[derive(Deserialize)]
struct SettingsBody {
    id_token_amr: Option<bool>,
    access_token_lifetime_secs: Option<u64>,
    invalid_client_status: Option<u16>,
    pc_mfa_enforced: Option<bool>,
    strict_code_tenant: Option<bool>,
}

async fn update_settings(
    State(shared): State<Arc<Shared>>,
    Json(s): Json<SettingsBody>,
) -> Response {
    let c = control(shared.clone());
    if let Some(v) = s.id_token_amr {
        c.set_id_token_amr(v);
    }
    if let Some(v) = s.access_token_lifetime_secs {
        c.set_access_token_lifetime(Duration::from_secs(v));
    }
    if let Some(v) = s.invalid_client_status {
        c.set_invalid_client_status(v);
    }
    if let Some(v) = s.pc_mfa_enforced {
        c.set_pc_mfa_enforced(v);
    }
    if let Some(v) = s.strict_code_tenant {
        c.set_strict_code_tenant(v);
    }
    Json(json!(shared.settings())).into_response()
}

async fn rotate_keys(State(shared): State<Arc<Shared>>) -> Response {
    let c = control(shared);
    c.rotate_signing_key();
    Json(json!({ "kids": c.signing_key_ids() })).into_response()
}

async fn add_fault(State(shared): State<Arc<Shared>>, Json(f): Json<Fault>) -> Response {
    control(shared).fail_next(f);
    ok()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    control(shared).clear_faults();
    ok()
}

async fn show_counters(State(shared): State<Arc<Shared>>) -> Response {
    let counters = lock(&shared.counters);
    let token: Vec<Value> = counters
        .token
        .iter()
        .map(|((tenant, grant_type), n)| json!({ "tenant": tenant, "grant_type": grant_type, "count": n }))
        .collect();
    Json(json!({ "token": token, "routes": counters.routes })).into_response()
}

async fn reset_counters(State(shared): State<Arc<Shared>>) -> Response {
    control(shared).reset_counters();
    ok()
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!(control(shared).recorded_requests())).into_response()
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> Response {
    control(shared).clear_recorded_requests();
    ok()
}

async fn list_refresh_tokens(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!(control(shared).issued_refresh_tokens())).into_response()
}
