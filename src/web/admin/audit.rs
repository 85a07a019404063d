//! The audit log for people: actors and partners by name (linked), details as a small table;
//! filter by partner (tenant id or name), actor (id or name), action and dates, with a bad filter
//! shown on the form; newest first; keyset pages by event id.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::export;
use super::view::{ActorView, DetailLine, PageFrame, actor_view, detail_lines, when};
use crate::app::AppState;
use crate::db;
use crate::db::staff::AuditFilter;
use crate::domain::Actor;
use crate::web::errors::{PageError, render};

const PAGE_SIZE: i64 = 50;

/// The audit log's query string (dates as `YYYY-MM-DD`, UTC).
#[derive(Debug, Clone, Default, Deserialize)]
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
    // An actor of a known form is matched exactly; anything else is part of a staff member's name.
    let actor = actor_text.map(Actor::parse).filter(Actor::is_known);
    let actor_name = actor_text.filter(|_| actor.is_none());
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

/// `GET /admin/audit.csv`: the filtered audit log as CSV, newest first, streamed
/// ([`export::download`]).
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
    let pool = state.pool.clone();
    let columns = [
        "time_utc",
        "actor",
        "actor_id",
        "action",
        "partner",
        "partner_tenant_id",
        "details",
    ];
    export::download("samgate-audit.csv", &columns, None, move |before| {
        let (pool, query) = (pool.clone(), query.clone());
        async move {
            let mut filter = filter_of(&query, &mut Vec::new());
            filter.before = before;
            let rows = db::staff::search_audit(&pool, &filter, export::BATCH).await?;
            let records: Vec<Vec<String>> = rows.iter().map(audit_record).collect();
            Ok::<_, sqlx::Error>((records, export::next_after(&rows, |last| Some(last.id))))
        }
    })
}

/// One audit event as the export's cells.
fn audit_record(e: &db::staff::AuditRow) -> Vec<String> {
    let partner = e.partner_id.zip(e.partner_name.as_deref());
    let details = detail_lines(&e.details)
        .into_iter()
        .map(|d| format!("{}: {}", d.key, d.value))
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        when(e.occurred_at),
        actor_view(&e.actor, e.actor_name.as_deref(), partner).name,
        e.actor.to_string(),
        e.action.clone(),
        e.partner_name.clone().unwrap_or_default(),
        e.partner_tenant_id
            .map(|t| t.to_string())
            .unwrap_or_default(),
        details,
    ]
}

fn midnight(day: Date) -> OffsetDateTime {
    day.with_time(Time::MIDNIGHT).assume_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_by_actor(text: &str) -> (Option<Actor>, Option<String>) {
        let query = AuditQuery {
            actor: text.to_owned(),
            ..Default::default()
        };
        let filter = filter_of(&query, &mut Vec::new());
        (filter.actor, filter.actor_name.map(str::to_owned))
    }

    #[test]
    fn an_actor_of_a_known_form_is_matched_exactly_and_other_text_by_staff_name() {
        let id = Uuid::nil();
        assert_eq!(
            filter_by_actor(&format!(" staff:{id} ")),
            (Some(Actor::Staff(id)), None)
        );
        assert_eq!(
            filter_by_actor(&format!("api-client:{id}")),
            (Some(Actor::ApiClient(id)), None)
        );
        assert_eq!(filter_by_actor("cli"), (Some(Actor::Cli), None));
        assert_eq!(filter_by_actor("Ada"), (None, Some("Ada".to_owned())));
        assert_eq!(
            filter_by_actor("staff:42"),
            (None, Some("staff:42".to_owned()))
        );
        assert_eq!(filter_by_actor("  "), (None, None));
    }
}
