//! API clients (admin only): list with their keys, create (all partners or chosen ones,
//! read-only), issue a key (shown once), revoke a key and disable a client through the verifier,
//! so this instance's cache drops them at once (others on the database notification).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::flash::Flash;
use super::view::{PageFrame, when, when_or};
use crate::api_keys::{self, ApiKeyError, NewClient, PartnerScope};
use crate::app::AppState;
use crate::db;
use crate::web::errors::{PageError, render};

/// Partners offered in the scope picker.
const PARTNER_CHOICES: i64 = 500;
/// A new key's lifetime unless the form says otherwise.
const DEFAULT_KEY_DAYS: i64 = 90;
/// The lifetimes the issue form offers (besides "never").
const KEY_DAYS: [i64; 4] = [30, 90, 180, 365];
/// An active key expiring within this is marked "expires soon" (and counted on the dashboard).
pub const EXPIRING_SOON: time::Duration = time::Duration::days(14);

/// The badge of a key: its state in words and its colour class.
pub fn key_state(
    revoked: bool,
    expires_at: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> (&'static str, &'static str) {
    match expires_at {
        _ if revoked => ("revoked", "bad"),
        Some(at) if at <= now => ("expired", "warn"),
        Some(at) if at - now < EXPIRING_SOON => ("expires soon", "warn"),
        _ => ("active", "ok"),
    }
}

struct KeyLine {
    id: Uuid,
    prefix: String,
    created: String,
    expires: String,
    /// `in 12 days`, `3 days ago`, or empty for a key that never expires.
    expires_relative: String,
    used: String,
    revoked: bool,
    state: &'static str,
    class: &'static str,
}

struct ClientLine {
    id: Uuid,
    name: String,
    description: String,
    scope: String,
    read_only: bool,
    disabled: bool,
    created: String,
    keys: Vec<KeyLine>,
}

struct PartnerChoice {
    tenant_id: Uuid,
    name: String,
    selected: bool,
}

/// The create form's values, echoed back when one is wrong.
#[derive(Debug, Default)]
struct ClientForm {
    name: String,
    description: String,
    scope_all: bool,
    partners: Vec<Uuid>,
    read_only: bool,
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage {
    frame: PageFrame,
    clients: Vec<ClientLine>,
    partners: Vec<PartnerChoice>,
    /// Visible rows of the partner list (at least 3, so it never collapses into a dropdown).
    partner_rows: usize,
    form: ClientForm,
    error: Option<String>,
    /// The lifetimes the issue form offers.
    key_days: Vec<i64>,
    default_key_days: i64,
}

#[derive(Template)]
#[template(path = "admin/key_issued.html")]
struct KeyIssuedPage {
    frame: PageFrame,
    client_name: String,
    key: String,
    prefix: String,
    expires: String,
}

/// The issue form: `expires_days` is a number of days or `never` (absent: the default).
#[derive(Debug, Default, serde::Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    expires_days: String,
}

async fn clients_page(
    state: &AppState,
    staff: &CurrentStaff,
    form: ClientForm,
    error: Option<String>,
) -> Result<ClientsPage, PageError> {
    let now = state.clock.now();
    let partners = db::partners::list(&state.pool, PARTNER_CHOICES)
        .await
        .map_err(PageError::internal)?;
    let name_of = |tenant: &Uuid| {
        partners
            .iter()
            .find(|p| p.tenant_id == *tenant)
            .map_or_else(|| tenant.to_string(), |p| p.display_name.clone())
    };
    let mut clients = Vec::new();
    for client in api_keys::list_clients(&state.pool)
        .await
        .map_err(PageError::internal)?
    {
        let keys = api_keys::list_keys(&state.pool, client.id)
            .await
            .map_err(PageError::internal)?;
        clients.push(ClientLine {
            id: client.id,
            description: client.description.clone().unwrap_or_default(),
            scope: match &client.scope {
                PartnerScope::All => "All partners".to_owned(),
                PartnerScope::Only(tenants) if tenants.is_empty() => "No partners".to_owned(),
                PartnerScope::Only(tenants) => {
                    let mut names: Vec<String> = tenants.iter().map(name_of).collect();
                    names.sort();
                    names.join(", ")
                }
            },
            read_only: client.read_only,
            disabled: client.disabled_at.is_some(),
            created: when(client.created_at),
            keys: keys
                .into_iter()
                .map(|k| {
                    let (state, class) = key_state(k.revoked_at.is_some(), k.expires_at, now);
                    KeyLine {
                        id: k.id,
                        prefix: k.prefix,
                        created: when(k.created_at),
                        expires: when_or(k.expires_at, "never"),
                        expires_relative: k
                            .expires_at
                            .map(|at| crate::clock::relative(at, now))
                            .unwrap_or_default(),
                        used: when_or(k.last_used_at, "never"),
                        revoked: k.revoked_at.is_some(),
                        state,
                        class,
                    }
                })
                .collect(),
            name: client.name,
        });
    }
    let mut choices: Vec<PartnerChoice> = partners
        .iter()
        .filter(|p| p.status != "offboarded")
        .map(|p| PartnerChoice {
            tenant_id: p.tenant_id,
            name: p.display_name.clone(),
            selected: form.partners.contains(&p.tenant_id),
        })
        .collect();
    choices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ClientsPage {
        frame: staff.frame("clients"),
        clients,
        partner_rows: choices.len().clamp(3, 8),
        partners: choices,
        form,
        error,
        key_days: KEY_DAYS.to_vec(),
        default_key_days: DEFAULT_KEY_DAYS,
    })
}

/// `GET /admin/clients`.
pub async fn list_clients(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, PageError> {
    let form = ClientForm {
        scope_all: true,
        ..ClientForm::default()
    };
    Ok(render(&clients_page(&state, &staff, form, None).await?)?.into_response())
}

/// Reads the create form (repeated `partners` fields, so not through serde).
fn read_client_form(body: &[u8]) -> Result<ClientForm, &'static str> {
    let mut form = ClientForm::default();
    for (name, value) in url::form_urlencoded::parse(body) {
        match name.as_ref() {
            "name" => form.name = value.trim().to_owned(),
            "description" => form.description = value.trim().to_owned(),
            "scope" => form.scope_all = value == "all",
            "read_only" => form.read_only = value == "yes",
            "partners" => form
                .partners
                .push(Uuid::parse_str(value.trim()).map_err(|_| "A chosen partner is not valid.")?),
            _ => {}
        }
    }
    Ok(form)
}

/// `POST /admin/clients`: creates a client, then shows the list with it.
pub async fn create_client(
    State(state): State<AppState>,
    staff: CurrentStaff,
    body: Bytes,
) -> Result<Response, PageError> {
    let refuse = async |form: ClientForm, message: String| -> Result<Response, PageError> {
        let page = clients_page(&state, &staff, form, Some(message)).await?;
        Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
    };
    let form = match read_client_form(&body) {
        Ok(form) => form,
        Err(message) => return refuse(ClientForm::default(), message.to_owned()).await,
    };
    if form.description.chars().count() > 500 {
        return refuse(
            form,
            "The description is at most 500 characters.".to_owned(),
        )
        .await;
    }
    if !form.scope_all && form.partners.is_empty() {
        return refuse(
            form,
            "Choose at least one partner, or let the client act for all partners.".to_owned(),
        )
        .await;
    }
    let actor = staff.actor();
    let created = api_keys::create_client(
        &state.pool,
        NewClient {
            name: &form.name,
            description: Some(form.description.as_str()).filter(|d| !d.is_empty()),
            partners: (!form.scope_all).then(|| form.partners.clone()),
            read_only: form.read_only,
            created_by: &actor,
        },
        state.clock.now(),
    )
    .await;
    match created {
        Ok(client) => {
            staff
                .redirect_with(
                    &format!("/admin/clients#client-{}", client.id),
                    Flash::success(format!(
                        "API client {} created. Next: issue it a key below.",
                        client.name
                    )),
                )
                .await
        }
        Err(err @ (ApiKeyError::DuplicateName(_) | ApiKeyError::InvalidName)) => {
            refuse(form, format!("{}.", capitalised(&err.to_string()))).await
        }
        Err(err) => Err(PageError::internal(err)),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn client_problem(err: ApiKeyError) -> PageError {
    match err {
        ApiKeyError::ClientNotFound(_) | ApiKeyError::KeyNotFound(_) => PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such API client or key. Go back to the API clients page.",
        ),
        ApiKeyError::ClientDisabled(_) => PageError::new(
            StatusCode::CONFLICT,
            "This API client is disabled",
            "A disabled client gets no new keys and cannot be changed. Create a new client.",
        ),
        ApiKeyError::KeyAlreadyRevoked(_) => PageError::new(
            StatusCode::CONFLICT,
            "This key is already revoked",
            "Nothing changed. Go back to the API clients page.",
        ),
        other => PageError::internal(other),
    }
}

fn parse_id(text: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(text).map_err(|_| client_problem(ApiKeyError::ClientNotFound(Uuid::nil())))
}

/// `POST /admin/clients/{id}/keys`: issues a key and shows it once.
pub async fn issue_api_key(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    form: Result<axum::Form<KeyForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let client_id = parse_id(&id)?;
    let form = form.map(|axum::Form(f)| f).unwrap_or_default();
    let now = state.clock.now();
    let expires_at = match form.expires_days.trim() {
        "" => Some(now + time::Duration::days(DEFAULT_KEY_DAYS)),
        "never" => None,
        days => match days.parse::<i64>() {
            Ok(days) if (1..=3650).contains(&days) => Some(now + time::Duration::days(days)),
            _ => {
                return staff
                    .redirect_with(
                        &format!("/admin/clients#client-{client_id}"),
                        Flash::failure(
                            "No key was issued: choose a lifetime from the list, or never.",
                        ),
                    )
                    .await;
            }
        },
    };
    let client = api_keys::list_clients(&state.pool)
        .await
        .map_err(PageError::internal)?
        .into_iter()
        .find(|c| c.id == client_id)
        .ok_or_else(|| client_problem(ApiKeyError::ClientNotFound(client_id)))?;
    let (record, key) =
        api_keys::issue_key(&state.pool, client_id, expires_at, &staff.actor(), now)
            .await
            .map_err(client_problem)?;
    Ok(render(&KeyIssuedPage {
        frame: staff.frame("clients"),
        client_name: client.name,
        key: key.expose_secret().to_owned(),
        prefix: record.prefix,
        expires: when_or(record.expires_at, "never"),
    })?
    .into_response())
}

/// `POST /admin/clients/{id}/keys/{key}/revoke`: the key stops working at once.
pub async fn revoke_api_key(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let client_id = parse_id(&id)?;
    let key_id = parse_id(&key)?;
    let owned = api_keys::list_keys(&state.pool, client_id)
        .await
        .map_err(PageError::internal)?
        .iter()
        .any(|k| k.id == key_id);
    if !owned {
        return Err(client_problem(ApiKeyError::KeyNotFound(key_id)));
    }
    state
        .api_keys
        .revoke_key(key_id, &staff.actor(), state.clock.now())
        .await
        .map_err(client_problem)?;
    staff
        .redirect_with(
            &format!("/admin/clients#client-{client_id}"),
            Flash::success("Key revoked: it stopped working at once."),
        )
        .await
}

/// `POST /admin/clients/{id}/disable`: every key of the client stops working at once.
pub async fn disable_api_client(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let client_id = parse_id(&id)?;
    state
        .api_keys
        .disable_client(client_id, &staff.actor(), state.clock.now())
        .await
        .map_err(client_problem)?;
    staff
        .redirect_with(
            &format!("/admin/clients#client-{client_id}"),
            Flash::success("API client disabled: every key of it stopped working at once."),
        )
        .await
}
