//! The audit log: filter by partner tenant, actor, action and date range; newest first; keyset
//! pages by event id.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::view::{PageFrame, compact, when};
use crate::app::AppState;
use crate::db;
use crate::db::staff::AuditFilter;
use crate::web::errors::{PageError, render};

const PAGE_SIZE: i64 = 50;

/// The audit log's query string (dates as `YYYY-MM-DD`, UTC).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    partner: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

struct EventLine {
    at: String,
    actor: String,
    actor_name: String,
    action: String,
    partner: String,
    details: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    frame: PageFrame,
    query: AuditQuery,
    events: Vec<EventLine>,
    next: Option<String>,
    paged: bool,
}

fn bad_filter(what: &str) -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This filter is not valid",
        format!("{what} Change the filter and try again."),
    )
}

fn parse_day(text: &str) -> Result<Option<Date>, PageError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format)
        .map(Some)
        .map_err(|_| bad_filter("Dates must look like 2026-11-28."))
}

fn optional(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// `GET /admin/audit`.
pub async fn list_audit_events(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|_| bad_filter("The filter could not be read."))?;
    let partner = match optional(&query.partner) {
        Some(text) => Some(
            Uuid::parse_str(text)
                .map_err(|_| bad_filter("The partner must be a tenant id (a GUID)."))?,
        ),
        None => None,
    };
    let before = match optional(&query.before) {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| bad_filter("The page cursor is not valid."))?,
        ),
        None => None,
    };
    let from = parse_day(&query.from)?.map(midnight);
    // "to" is inclusive: events before the next midnight.
    let until = parse_day(&query.to)?.and_then(Date::next_day).map(midnight);
    if query.actor.len() > 200 || query.action.len() > 200 {
        return Err(bad_filter(
            "The actor and action are at most 200 characters.",
        ));
    }
    let mut rows = db::staff::search_audit(
        &state.pool,
        &AuditFilter {
            partner_tenant_id: partner,
            actor: optional(&query.actor),
            action: optional(&query.action),
            from,
            until,
            before,
        },
        PAGE_SIZE + 1,
    )
    .await
    .map_err(PageError::internal)?;
    let next = if rows.len() > PAGE_SIZE as usize {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|last| {
            let query = serde_urlencoded::to_string([
                ("partner", query.partner.trim()),
                ("actor", query.actor.trim()),
                ("action", query.action.trim()),
                ("from", query.from.trim()),
                ("to", query.to.trim()),
                ("before", &last.id.to_string()),
            ])
            .unwrap_or_default();
            format!("/admin/audit?{query}")
        })
    } else {
        None
    };
    let events = rows
        .into_iter()
        .map(|e| EventLine {
            at: when(e.occurred_at),
            actor_name: e.actor_name.unwrap_or_default(),
            actor: e.actor,
            action: e.action,
            partner: e
                .partner_tenant_id
                .map(|t| t.to_string())
                .unwrap_or_default(),
            details: compact(&e.details),
        })
        .collect();
    Ok(render(&AuditPage {
        frame: staff.frame("audit"),
        paged: before.is_some(),
        query,
        events,
        next,
    })?
    .into_response())
}

fn midnight(day: Date) -> OffsetDateTime {
    day.with_time(Time::MIDNIGHT).assume_utc()
}
