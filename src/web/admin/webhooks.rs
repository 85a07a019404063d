//! Webhook endpoints: list (with secret facts and delivery counts), add (the signing secret shown
//! once), rotate the secret, disable and enable, and an endpoint's recent deliveries with replay.
//! Every change goes through the `webhooks` service functions the CLI uses too.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::flash::Flash;
use super::view::{PageFrame, when, when_or};
use crate::app::AppState;
use crate::db;
use crate::db::webhooks::{Delivery, EndpointOverview};
use crate::domain::DeliveryStatus;
use crate::web::errors::{PageError, render};
use crate::webhooks::{self, EventType, WebhookError, WebhookSecret};

/// Deliveries shown on an endpoint's page (newest first).
const RECENT_DELIVERIES: i64 = 100;

/// One endpoint as the pages show it.
struct EndpointLine {
    id: Uuid,
    url: String,
    description: String,
    /// The chosen event types; empty: all events.
    events: Vec<String>,
    enabled: bool,
    created: String,
    /// `disabled 2026-12-01 10:00 UTC` or empty.
    disabled: String,
    /// When the secret was last rotated, or that it never was.
    secret: String,
    pending: i64,
    failed: i64,
}

impl EndpointLine {
    fn of(overview: EndpointOverview, now: OffsetDateTime) -> Self {
        let endpoint = overview.endpoint;
        let secret = match overview.secret_issued_at {
            Some(at) if overview.secrets_issued > 1 => {
                format!("rotated {} ({})", when(at), crate::clock::relative(at, now))
            }
            Some(_) => "never rotated".to_owned(),
            None => "no signing secret".to_owned(),
        };
        Self {
            id: endpoint.id,
            url: endpoint.url,
            description: endpoint.description.unwrap_or_default(),
            events: endpoint.event_types,
            enabled: endpoint.disabled_at.is_none(),
            created: when(endpoint.created_at),
            disabled: endpoint
                .disabled_at
                .map(|at| format!("disabled {}", when(at)))
                .unwrap_or_default(),
            secret,
            pending: overview.pending,
            failed: overview.failed,
        }
    }
}

/// An event type as the add form and the empty state offer it.
struct EventChoice {
    name: &'static str,
    summary: &'static str,
    checked: bool,
}

/// The add form's values, echoed back when one is wrong.
#[derive(Debug, Default)]
struct EndpointForm {
    url: String,
    description: String,
    events: Vec<String>,
}

/// What is wrong with the add form, next to the field it concerns.
#[derive(Debug, Default)]
struct FormErrors {
    url: Option<String>,
    description: Option<String>,
    events: Option<String>,
}

impl FormErrors {
    fn any(&self) -> bool {
        self.url.is_some() || self.description.is_some() || self.events.is_some()
    }
}

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
struct WebhooksPage {
    frame: PageFrame,
    endpoints: Vec<EndpointLine>,
    events: Vec<EventChoice>,
    form: EndpointForm,
    errors: FormErrors,
    description_max: usize,
}

struct DeliveryLine {
    id: i64,
    message_id: String,
    event_type: String,
    status: &'static str,
    class: &'static str,
    attempts: i32,
    /// `HTTP 204`, or `no answer`.
    last_status: String,
    last_error: String,
    created: String,
    created_relative: String,
    /// The last attempt, or `not yet`.
    last_attempt: String,
    /// For a pending delivery: when it is next attempted.
    next_attempt: String,
}

impl DeliveryLine {
    fn of(delivery: Delivery, now: OffsetDateTime) -> Self {
        let class = match delivery.status {
            DeliveryStatus::Delivered => "ok",
            DeliveryStatus::Pending => "warn",
            DeliveryStatus::Failed => "bad",
        };
        let next_attempt = match delivery.status {
            DeliveryStatus::Pending if delivery.next_attempt_at <= now => "now".to_owned(),
            DeliveryStatus::Pending if delivery.next_attempt_at - now < time::Duration::MINUTE => {
                "within a minute".to_owned()
            }
            DeliveryStatus::Pending => crate::clock::relative(delivery.next_attempt_at, now),
            _ => String::new(),
        };
        Self {
            id: delivery.id,
            message_id: delivery.message_id,
            event_type: delivery.event_type,
            status: delivery.status.as_str(),
            class,
            attempts: delivery.attempts,
            last_status: delivery
                .last_status
                .map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}")),
            last_error: delivery.last_error.unwrap_or_default(),
            created: when(delivery.created_at),
            created_relative: crate::clock::relative(delivery.created_at, now),
            last_attempt: when_or(delivery.last_attempt_at, "not yet"),
            next_attempt,
        }
    }
}

/// A status of the deliveries filter.
struct StatusChoice {
    value: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "admin/webhook.html")]
struct WebhookPage {
    frame: PageFrame,
    endpoint: EndpointLine,
    deliveries: Vec<DeliveryLine>,
    statuses: Vec<StatusChoice>,
    /// The filter's status, or empty for all.
    filter: &'static str,
    limit: i64,
    overlap_hours: i64,
}

#[derive(Template)]
#[template(path = "admin/webhook_secret.html")]
struct WebhookSecretPage {
    frame: PageFrame,
    endpoint_id: Uuid,
    url: String,
    secret: String,
    /// A rotation (the previous secret signs on for `overlap_hours`), not a new endpoint.
    rotated: bool,
    overlap_hours: i64,
}

/// The deliveries filter: `status` is pending, delivered, failed, or empty for all.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DeliveriesQuery {
    #[serde(default)]
    status: String,
}

fn endpoint_not_found() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Webhook endpoint not found",
        "There is no webhook endpoint or delivery at this address. Find it from the webhooks list.",
    )
}

fn parse_endpoint_id(text: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(text).map_err(|_| endpoint_not_found())
}

fn webhook_problem(err: WebhookError) -> PageError {
    match err {
        WebhookError::NotFound(_) => endpoint_not_found(),
        other => PageError::internal(other),
    }
}

async fn overview_of(state: &AppState, id: Uuid) -> Result<EndpointOverview, PageError> {
    db::webhooks::list_endpoint_overviews(&state.pool, Some(id))
        .await
        .map_err(PageError::internal)?
        .pop()
        .ok_or_else(endpoint_not_found)
}

fn overlap_hours(state: &AppState) -> i64 {
    state.config.lifecycle.webhook_secret_overlap.whole_hours()
}

async fn webhooks_page(
    state: &AppState,
    staff: &CurrentStaff,
    form: EndpointForm,
    errors: FormErrors,
) -> Result<WebhooksPage, PageError> {
    let now = state.clock.now();
    let endpoints = db::webhooks::list_endpoint_overviews(&state.pool, None)
        .await
        .map_err(PageError::internal)?
        .into_iter()
        .map(|overview| EndpointLine::of(overview, now))
        .collect();
    let events = EventType::ALL
        .into_iter()
        .map(|event| EventChoice {
            name: event.as_str(),
            summary: event.summary(),
            checked: form.events.iter().any(|e| e == event.as_str()),
        })
        .collect();
    Ok(WebhooksPage {
        frame: staff.frame("webhooks"),
        endpoints,
        events,
        form,
        errors,
        description_max: webhooks::DESCRIPTION_MAX_CHARS,
    })
}

/// `GET /admin/webhooks`.
pub async fn list_webhooks(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, PageError> {
    let page = webhooks_page(
        &state,
        &staff,
        EndpointForm::default(),
        FormErrors::default(),
    )
    .await?;
    Ok(render(&page)?.into_response())
}

/// Reads the add form (repeated `events` fields, so not through serde).
fn read_endpoint_form(body: &[u8]) -> EndpointForm {
    let mut form = EndpointForm::default();
    for (name, value) in url::form_urlencoded::parse(body) {
        match name.as_ref() {
            "url" => form.url = value.trim().to_owned(),
            "description" => form.description = value.trim().to_owned(),
            "events" => form.events.push(value.trim().to_owned()),
            _ => {}
        }
    }
    form
}

/// `POST /admin/webhooks`: registers an endpoint and shows its signing secret once.
pub async fn add_webhook(
    State(state): State<AppState>,
    staff: CurrentStaff,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = read_endpoint_form(&body);
    let mut errors = FormErrors::default();
    if form.url.is_empty() {
        errors.url = Some("Enter the URL samgate should POST events to.".to_owned());
    }
    if !errors.any() {
        let added = webhooks::add_endpoint(
            &state,
            &form.url,
            &form.events,
            Some(form.description.as_str()).filter(|d| !d.is_empty()),
            &staff.actor(),
            state.clock.now(),
        )
        .await;
        match added {
            Ok((endpoint, secret)) => {
                return show_secret(&state, &staff, endpoint.id, endpoint.url, &secret, false);
            }
            Err(WebhookError::InvalidUrl) => {
                errors.url = Some(
                    "Enter an absolute http or https URL, e.g. https://panel.example.com/hooks/samgate, \
                     without a user name or password in it."
                        .to_owned(),
                );
            }
            Err(WebhookError::DescriptionTooLong) => {
                errors.description = Some(format!(
                    "The description is at most {} characters.",
                    webhooks::DESCRIPTION_MAX_CHARS
                ));
            }
            Err(WebhookError::UnknownEventType(_)) => {
                errors.events =
                    Some("Choose event types from the list, or none for all events.".to_owned());
            }
            Err(other) => return Err(PageError::internal(other)),
        }
    }
    let page = webhooks_page(&state, &staff, form, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
}

fn show_secret(
    state: &AppState,
    staff: &CurrentStaff,
    endpoint_id: Uuid,
    url: String,
    secret: &WebhookSecret,
    rotated: bool,
) -> Result<Response, PageError> {
    Ok(render(&WebhookSecretPage {
        frame: staff.frame("webhooks"),
        endpoint_id,
        url,
        secret: secret.expose().to_owned(),
        rotated,
        overlap_hours: overlap_hours(state),
    })?
    .into_response())
}

/// `GET /admin/webhooks/{id}`: the endpoint and its recent deliveries, optionally of one status.
pub async fn show_webhook(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let id = parse_endpoint_id(&id)?;
    let overview = overview_of(&state, id).await?;
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let filter = match query.status.trim() {
        "" => None,
        text => Some(text.parse::<DeliveryStatus>().map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "Unknown delivery status",
                "Filter by pending, delivered or failed, or show all deliveries.",
            )
        })?),
    };
    let now = state.clock.now();
    let deliveries =
        db::webhooks::list_deliveries(&state.pool, Some(id), filter, RECENT_DELIVERIES)
            .await
            .map_err(PageError::internal)?
            .into_iter()
            .map(|delivery| DeliveryLine::of(delivery, now))
            .collect();
    let page = WebhookPage {
        frame: staff.frame("webhooks"),
        endpoint: EndpointLine::of(overview, now),
        deliveries,
        statuses: DeliveryStatus::ALL
            .into_iter()
            .map(|status| StatusChoice {
                value: status.as_str(),
                selected: filter == Some(status),
            })
            .collect(),
        filter: filter.map_or("", DeliveryStatus::as_str),
        limit: RECENT_DELIVERIES,
        overlap_hours: overlap_hours(&state),
    };
    Ok(render(&page)?.into_response())
}

/// `POST /admin/webhooks/{id}/rotate-secret`: a new secret, shown once; the previous one keeps
/// signing for the configured overlap.
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_endpoint_id(&id)?;
    let overview = overview_of(&state, id).await?;
    let secret = webhooks::rotate_secret(&state, id, &staff.actor(), state.clock.now())
        .await
        .map_err(webhook_problem)?;
    show_secret(&state, &staff, id, overview.endpoint.url, &secret, true)
}

async fn switch_endpoint(
    state: &AppState,
    staff: &CurrentStaff,
    id: &str,
    enabled: bool,
) -> Result<Response, PageError> {
    let id = parse_endpoint_id(id)?;
    let changed =
        webhooks::set_endpoint_enabled(state, id, enabled, &staff.actor(), state.clock.now())
            .await
            .map_err(webhook_problem)?;
    let flash = match (changed, enabled) {
        (true, true) => Flash::success(
            "Endpoint enabled: new events are sent to it, and deliveries queued meanwhile go out when due.",
        ),
        (true, false) => Flash::success(
            "Endpoint disabled: it gets no new events; queued deliveries wait until it is enabled again.",
        ),
        (false, true) => Flash::failure(
            "Nothing changed: the endpoint was already enabled. Check its deliveries below.",
        ),
        (false, false) => Flash::failure(
            "Nothing changed: the endpoint was already disabled. Enable it to send events again.",
        ),
    };
    staff
        .redirect_with(&format!("/admin/webhooks/{id}"), flash)
        .await
}

/// `POST /admin/webhooks/{id}/disable`.
pub async fn disable_webhook(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    switch_endpoint(&state, &staff, &id, false).await
}

/// `POST /admin/webhooks/{id}/enable`.
pub async fn enable_webhook(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    switch_endpoint(&state, &staff, &id, true).await
}

/// `POST /admin/webhooks/{id}/deliveries/{delivery}/replay`: queues the delivery again now, with
/// its original `webhook-id` (receivers deduplicate by it).
pub async fn replay_webhook_delivery(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let id = parse_endpoint_id(&id)?;
    let delivery_id: i64 = delivery.parse().map_err(|_| endpoint_not_found())?;
    let delivery = db::webhooks::find_delivery(&state.pool, delivery_id)
        .await
        .map_err(PageError::internal)?
        .filter(|d| d.endpoint_id == id)
        .ok_or_else(endpoint_not_found)?;
    let enabled = overview_of(&state, id)
        .await?
        .endpoint
        .disabled_at
        .is_none();
    webhooks::replay(&state, delivery.id, &staff.actor(), state.clock.now())
        .await
        .map_err(webhook_problem)?;
    let flash = if enabled {
        Flash::success(format!(
            "Delivery {} queued again with webhook-id {}; it is sent within seconds.",
            delivery.id, delivery.message_id
        ))
    } else {
        Flash::failure(format!(
            "Delivery {} queued again, but the endpoint is disabled: enable it to send the delivery.",
            delivery.id
        ))
    };
    staff
        .redirect_with(&format!("/admin/webhooks/{id}"), flash)
        .await
}
