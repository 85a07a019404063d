//! The audit log for people: actors and partners by name (linked), details as a small table;
//! filter by partner (tenant id or name), actor (id or name), action and dates, with a bad filter
//! shown on the form; newest first; keyset pages by event id.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::view::{ActorView, DetailLine, PageFrame, actor_view, csv_line, detail_lines, when};
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
    actor: ActorView,
    action: String,
    partner_name: String,
    partner_link: Option<String>,
    details: Vec<DetailLine>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    frame: PageFrame,
    query: AuditQuery,
    errors: Vec<(&'static str, &'static str)>,
    events: Vec<EventLine>,
    next: Option<String>,
    paged: bool,
}

impl AuditPage {
    fn error_for(&self, field: &str) -> Option<&'static str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, message)| *message)
    }

    fn filtered(&self) -> bool {
        [
            &self.query.partner,
            &self.query.actor,
            &self.query.action,
            &self.query.from,
            &self.query.to,
        ]
        .iter()
        .any(|v| !v.trim().is_empty())
    }
}

fn parse_day(text: &str) -> Result<Option<Date>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).map(Some).map_err(|_| ())
}

fn optional(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// Stored actors are typed exactly; anything else is part of a staff member's name.
fn is_actor_id(text: &str) -> bool {
    text.starts_with("staff:")
        || text.starts_with("partner-admin:")
        || text == "cli"
        || text == "system"
}

/// `GET /admin/audit`. A filter that cannot be read is shown on the form (400), not as an error page.
pub async fn list_audit_events(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let mut errors = Vec::new();
    let filter = filter_of(&query, &mut errors);
    let before = filter.before;
    let mut rows = if errors.is_empty() {
        db::staff::search_audit(&state.pool, &filter, PAGE_SIZE + 1)
            .await
            .map_err(PageError::internal)?
    } else {
        Vec::new()
    };
    let next = super::view::next_page(
        &mut rows,
        PAGE_SIZE as usize,
        "/admin/audit",
        &[
            ("partner", query.partner.trim()),
            ("actor", query.actor.trim()),
            ("action", query.action.trim()),
            ("from", query.from.trim()),
            ("to", query.to.trim()),
        ],
        ("before", |last| last.id.to_string()),
    );
    let events = rows
        .into_iter()
        .map(|e| {
            let partner = e.partner_id.zip(e.partner_name.as_deref());
            EventLine {
                at: when(e.occurred_at),
                actor: actor_view(&e.actor, e.actor_name.as_deref(), partner),
                action: e.action,
                partner_name: match (&e.partner_name, e.partner_tenant_id) {
                    (Some(name), _) => name.clone(),
                    (None, Some(tenant)) => tenant.to_string(),
                    (None, None) => String::new(),
                },
                partner_link: e.partner_id.map(|id| format!("/admin/partners/{id}")),
                details: detail_lines(&e.details),
            }
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = render(&AuditPage {
        frame: staff.frame("audit"),
        paged: before.is_some(),
        query,
        errors,
        events,
        next,
    })?;
    Ok((status, page).into_response())
}

/// The filter of a query string; what cannot be read is added to `errors` (field, message).
fn filter_of<'q>(
    query: &'q AuditQuery,
    errors: &mut Vec<(&'static str, &'static str)>,
) -> AuditFilter<'q> {
    let partner_text = optional(&query.partner);
    let partner = partner_text.and_then(|t| Uuid::parse_str(t).ok());
    let partner_name = partner_text.filter(|_| partner.is_none());
    let actor_text = optional(&query.actor);
    let actor = actor_text.filter(|t| is_actor_id(t));
    let actor_name = actor_text.filter(|t| !is_actor_id(t));
    let before = match optional(&query.before) {
        Some(text) => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push((
                    "before",
                    "The page link is not valid; start again from the newest events.",
                ));
                None
            }
        },
        None => None,
    };
    let from = parse_day(&query.from).unwrap_or_else(|()| {
        errors.push(("from", "Dates look like 2026-11-28."));
        None
    });
    let to = parse_day(&query.to).unwrap_or_else(|()| {
        errors.push(("to", "Dates look like 2026-11-28."));
        None
    });
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        errors.push(("to", "The end date is before the start date."));
    }
    for (field, value) in [
        ("partner", &query.partner),
        ("actor", &query.actor),
        ("action", &query.action),
    ] {
        if value.len() > 200 {
            errors.push((field, "At most 200 characters."));
        }
    }
    AuditFilter {
        partner_tenant_id: partner,
        partner_name,
        actor,
        actor_name,
        action: optional(&query.action),
        from: from.map(midnight),
        // "to" is inclusive: events before the next midnight.
        until: to.and_then(Date::next_day).map(midnight),
        before,
    }
}

/// Rows per database read of the CSV export.
const EXPORT_BATCH: i64 = 500;

/// `GET /admin/audit.csv`: the filtered audit log as CSV, newest first, streamed: read in keyset
/// batches while the body is sent, so memory stays flat however long the log is.
pub async fn export_audit_events(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let mut errors = Vec::new();
    filter_of(&query, &mut errors);
    if let Some((_, message)) = errors.first() {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "This filter is not valid",
            format!("{message} Change the filter on the audit log page and export again."),
        ));
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let pool = state.pool.clone();
    tokio::spawn(async move {
        let mut errors = Vec::new();
        let mut filter = filter_of(&query, &mut errors);
        filter.before = None;
        let header = "time_utc,actor,actor_id,action,partner,partner_tenant_id,details\r\n";
        if sender.send(Ok(header.into())).await.is_err() {
            return;
        }
        loop {
            let rows = match db::staff::search_audit(&pool, &filter, EXPORT_BATCH).await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(error = %error, "audit export stopped: the database failed");
                    let _ = sender.send(Err(std::io::Error::other("database"))).await;
                    return;
                }
            };
            let mut chunk = String::new();
            for e in &rows {
                let partner = e.partner_id.zip(e.partner_name.as_deref());
                let details = detail_lines(&e.details)
                    .into_iter()
                    .map(|d| format!("{}: {}", d.key, d.value))
                    .collect::<Vec<_>>()
                    .join("; ");
                let cells = [
                    when(e.occurred_at),
                    actor_view(&e.actor, e.actor_name.as_deref(), partner).name,
                    e.actor.clone(),
                    e.action.clone(),
                    e.partner_name.clone().unwrap_or_default(),
                    e.partner_tenant_id
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    details,
                ];
                chunk.push_str(&csv_line(&cells));
            }
            if !chunk.is_empty() && sender.send(Ok(chunk.into())).await.is_err() {
                return;
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == EXPORT_BATCH => filter.before = Some(last.id),
                _ => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"samgate-audit.csv\"",
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

fn midnight(day: Date) -> OffsetDateTime {
    day.with_time(Time::MIDNIGHT).assume_utc()
}

#[cfg(test)]
mod tests {
    use super::super::view::csv_line;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line(&["a,b".to_owned(), "say \"hi\"".to_owned(), "=1+1".to_owned()]);
        assert_eq!(line, "\"a,b\",\"say \"\"hi\"\"\",'=1+1\r\n");
    }
}
