//! Activity of the estate, a partner or an API client over the last hour, day or 30 days (calls by
//! outcome per bucket as an inline SVG chart, p50/p95 latency, samgate error codes, token refresh
//! outcomes), and the call log of a partner or client with filters and keyset pages.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::{Date, Duration, OffsetDateTime, Time};
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::view::{PageFrame, when};
use crate::app::AppState;
use crate::db;
use crate::db::activity::{BucketRow, CallFilter, RefreshRow, Scope, StatusClass, SummaryRow};
use crate::web::errors::{PageError, render};

/// A time range the activity page shows, and how it is cut into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// 12 buckets of 5 minutes.
    Hour,
    /// 24 buckets of an hour.
    Day,
    /// 30 buckets of a day.
    Month,
}

impl Window {
    const ALL: [Self; 3] = [Self::Hour, Self::Day, Self::Month];

    fn parse(text: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == text)
            .unwrap_or(Self::Day)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "30d",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Hour => "Last hour",
            Self::Day => "Last 24 hours",
            Self::Month => "Last 30 days",
        }
    }

    fn step(self) -> Duration {
        match self {
            Self::Hour => Duration::minutes(5),
            Self::Day => Duration::hours(1),
            Self::Month => Duration::days(1),
        }
    }

    fn buckets(self) -> i64 {
        match self {
            Self::Hour => 12,
            Self::Day => 24,
            Self::Month => 30,
        }
    }

    /// `[since, until)`: whole buckets ending with the one holding `now`.
    fn range(self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        let step = self.step().whole_seconds();
        let now_s = now.unix_timestamp();
        let end = now_s - now_s.rem_euclid(step) + step;
        let until = OffsetDateTime::from_unix_timestamp(end).unwrap_or(now);
        (until - self.step() * (self.buckets() as i32), until)
    }
}

/// The activity page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct ActivityQuery {
    #[serde(default)]
    window: String,
}

/// One window choice in the page's switcher.
struct WindowLink {
    value: &'static str,
    label: &'static str,
    current: bool,
}

/// One stacked bar segment of the chart, in viewBox units.
struct Segment {
    y: i64,
    height: i64,
    class: &'static str,
}

/// One bucket's bar.
struct Bar {
    x: i64,
    width: i64,
    title: String,
    segments: Vec<Segment>,
}

/// An axis label under the chart.
struct Tick {
    x: i64,
    text: String,
}

/// The chart: viewBox `0 0 WIDTH HEIGHT`, scaled by CSS to the page (and a phone).
struct Chart {
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    max: i64,
}

const WIDTH: i64 = 600;
const PLOT: i64 = 150;

impl Chart {
    fn of(rows: &[BucketRow], window: Window, since: OffsetDateTime) -> Self {
        let n = window.buckets();
        let step = window.step();
        let filled: Vec<BucketRow> = (0..n)
            .map(|i| {
                let start = since + step * (i as i32);
                rows.iter()
                    .find(|r| r.bucket == start)
                    .cloned()
                    .unwrap_or_else(|| BucketRow::empty(start))
            })
            .collect();
        let max = filled.iter().map(|r| r.calls).max().unwrap_or(0).max(1);
        let slot = WIDTH / n;
        let width = (slot - 2).max(1);
        let mut bars = Vec::new();
        let mut ticks = Vec::new();
        for (i, row) in filled.iter().enumerate() {
            let x = i as i64 * slot + 1;
            let ok = row.calls - row.client_errors - row.throttled - row.server_errors;
            let mut bottom = PLOT;
            let mut segments = Vec::new();
            for (count, class) in [
                (ok, "ok"),
                (row.client_errors, "client"),
                (row.throttled, "throttled"),
                (row.server_errors, "server"),
            ] {
                if count <= 0 {
                    continue;
                }
                let height = (count * PLOT / max).max(1);
                bottom -= height;
                segments.push(Segment {
                    y: bottom,
                    height,
                    class,
                });
            }
            bars.push(Bar {
                x,
                width,
                title: format!(
                    "{}: {} calls, {} 4xx, {} throttled, {} 5xx",
                    when(row.bucket),
                    row.calls,
                    row.client_errors,
                    row.throttled,
                    row.server_errors
                ),
                segments,
            });
            let every = match window {
                Window::Hour => 3,
                Window::Day => 6,
                Window::Month => 7,
            };
            if i % every == 0 {
                let t = row.bucket;
                let text = match window {
                    Window::Month => format!("{:02}-{:02}", u8::from(t.month()), t.day()),
                    _ => format!("{:02}:{:02}", t.hour(), t.minute()),
                };
                ticks.push(Tick { x, text });
            }
        }
        Self { bars, ticks, max }
    }
}

#[derive(Template)]
#[template(path = "admin/activity.html")]
struct ActivityPage {
    frame: PageFrame,
    heading: String,
    base: String,
    back: Option<(String, String)>,
    calls_link: Option<String>,
    windows: Vec<WindowLink>,
    window_label: &'static str,
    range: String,
    summary: SummaryRow,
    p50: String,
    p95: String,
    chart: Chart,
    codes: Vec<(String, i64)>,
    refresh: Option<RefreshRow>,
    busiest_partners: Vec<BusyLine>,
    busiest_clients: Vec<BusyLine>,
}

/// A row of the estate's busiest partners or clients.
struct BusyLine {
    name: String,
    link: Option<String>,
    calls: i64,
    errors: i64,
}

impl BusyLine {
    fn of(row: db::activity::BusiestRow, path: &str) -> Self {
        Self {
            name: row
                .name
                .or_else(|| row.key.map(|k| k.to_string()))
                .unwrap_or_default(),
            link: row.id.map(|id| format!("/admin/{path}/{id}/activity")),
            calls: row.calls,
            errors: row.errors,
        }
    }
}

impl ActivityPage {
    fn percent(&self, count: &i64) -> String {
        if self.summary.calls == 0 {
            return "0%".to_owned();
        }
        format!("{:.1}%", *count as f64 * 100.0 / self.summary.calls as f64)
    }
}

struct Subject {
    scope: Scope,
    section: &'static str,
    heading: String,
    base: String,
    back: Option<(String, String)>,
    calls_link: Option<String>,
    refresh_tenant: Option<Option<Uuid>>,
    busiest: bool,
}

async fn show_activity(
    state: &AppState,
    staff: &CurrentStaff,
    subject: Subject,
    query: ActivityQuery,
) -> Result<Response, PageError> {
    let window = Window::parse(&query.window);
    let now = state.clock.now();
    let (since, until) = window.range(now);
    let pool = &state.pool;
    let step = window.step().whole_seconds();
    let (rows, summary, p50, p95) = if window == Window::Hour {
        let rows = db::activity::buckets(pool, subject.scope, since, until, step)
            .await
            .map_err(PageError::internal)?;
        let summary = db::activity::summary(pool, subject.scope, since, until)
            .await
            .map_err(PageError::internal)?;
        let exact = |ms: Option<i32>| ms.map_or_else(|| "none".to_owned(), |ms| format!("{ms} ms"));
        let (p50, p95) = (exact(summary.p50_ms), exact(summary.p95_ms));
        (rows, summary, p50, p95)
    } else {
        // Whole hours already rolled up come from the rollup, the rest from the call records.
        let split = db::activity::rolled_until(pool)
            .await
            .map_err(PageError::internal)?
            .map_or(since, |rolled| rolled.clamp(since, until));
        let rows = db::activity::rolled_buckets(pool, subject.scope, since, split, until, step)
            .await
            .map_err(PageError::internal)?;
        let rolled = db::activity::rolled_summary(pool, subject.scope, since, split, until)
            .await
            .map_err(PageError::internal)?;
        let counts: Vec<i64> = rolled
            .latency_counts
            .iter()
            .map(|c| c.unwrap_or(0))
            .collect();
        let summary = SummaryRow {
            calls: rolled.calls.unwrap_or(0),
            client_errors: rolled.client_errors.unwrap_or(0),
            throttled: rolled.throttled.unwrap_or(0),
            server_errors: rolled.server_errors.unwrap_or(0),
            samgate_errors: rolled.samgate_errors.unwrap_or(0),
            p50_ms: None,
            p95_ms: None,
        };
        (
            rows,
            summary,
            histogram_percentile(&counts, 0.5),
            histogram_percentile(&counts, 0.95),
        )
    };
    let codes = db::activity::error_codes(pool, subject.scope, since, until)
        .await
        .map_err(PageError::internal)?;
    let refresh = match subject.refresh_tenant {
        Some(tenant) => Some(
            db::activity::refresh_outcomes(pool, tenant, since)
                .await
                .map_err(PageError::internal)?,
        ),
        None => None,
    };
    let (busiest_partners, busiest_clients) = if subject.busiest {
        let split = match window {
            Window::Hour => since,
            _ => db::activity::rolled_until(pool)
                .await
                .map_err(PageError::internal)?
                .map_or(since, |rolled| rolled.clamp(since, until)),
        };
        let partners = db::activity::rolled_busiest(pool, true, since, split, until, 10)
            .await
            .map_err(PageError::internal)?;
        let clients = db::activity::rolled_busiest(pool, false, since, split, until, 10)
            .await
            .map_err(PageError::internal)?;
        (
            partners
                .into_iter()
                .map(|r| BusyLine::of(r, "partners"))
                .collect(),
            clients
                .into_iter()
                .map(|r| BusyLine::of(r, "clients"))
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let windows = Window::ALL
        .into_iter()
        .map(|w| WindowLink {
            value: w.as_str(),
            label: w.label(),
            current: w == window,
        })
        .collect();
    Ok(render(&ActivityPage {
        frame: staff.frame(subject.section),
        heading: subject.heading,
        base: subject.base,
        back: subject.back,
        calls_link: subject.calls_link,
        windows,
        window_label: window.label(),
        range: format!("{} to {}", when(since), when(until)),
        chart: Chart::of(&rows, window, since),
        summary,
        p50,
        p95,
        codes,
        refresh,
        busiest_partners,
        busiest_clients,
    })?
    .into_response())
}

/// The bucket of a latency histogram (per [`db::activity::LATENCY_BOUNDS_MS`]) holding quantile
/// `q`, in words: `≤ 100 ms`.
fn histogram_percentile(counts: &[i64], q: f64) -> String {
    let total: i64 = counts.iter().sum();
    if total == 0 {
        return "none".to_owned();
    }
    let rank = ((q * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return match db::activity::LATENCY_BOUNDS_MS.get(i) {
                Some(bound) => format!("≤ {bound} ms"),
                None => format!(
                    "> {} ms",
                    db::activity::LATENCY_BOUNDS_MS.last().copied().unwrap_or(0)
                ),
            };
        }
    }
    "none".to_owned()
}

fn not_found(what: &str) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        format!("{what} not found"),
        format!("There is no {} at this address.", what.to_lowercase()),
    )
}

async fn client_of(state: &AppState, id: &str) -> Result<db::api_clients::ClientRow, PageError> {
    let id = Uuid::parse_str(id).map_err(|_| not_found("API client"))?;
    db::api_clients::find_client(&state.pool, id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(|| not_found("API client"))
}

/// `GET /admin/activity`: the whole estate.
pub async fn show_estate_activity(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let subject = Subject {
        scope: Scope::Estate,
        section: "activity",
        heading: "Activity of the estate".to_owned(),
        base: "/admin/activity".to_owned(),
        back: None,
        calls_link: None,
        refresh_tenant: Some(None),
        busiest: true,
    };
    show_activity(
        &state,
        &staff,
        subject,
        query.map(|q| q.0).unwrap_or_default(),
    )
    .await
}

/// `GET /admin/partners/{id}/activity`.
pub async fn show_partner_activity(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    query: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let partner = super::partners::find_partner(&state, &id).await?;
    let subject = Subject {
        scope: Scope::Partner(partner.tenant_id),
        section: "partners",
        heading: format!("Activity of {}", partner.display_name),
        base: format!("/admin/partners/{}/activity", partner.id),
        back: Some((
            format!("/admin/partners/{}", partner.id),
            partner.display_name.clone(),
        )),
        calls_link: Some(format!("/admin/partners/{}/calls", partner.id)),
        refresh_tenant: Some(Some(partner.tenant_id)),
        busiest: false,
    };
    show_activity(
        &state,
        &staff,
        subject,
        query.map(|q| q.0).unwrap_or_default(),
    )
    .await
}

/// `GET /admin/clients/{id}/activity`.
pub async fn show_client_activity(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    query: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let client = client_of(&state, &id).await?;
    let subject = Subject {
        scope: Scope::Client(client.id),
        section: "activity",
        heading: format!("Activity of API client {}", client.name),
        base: format!("/admin/clients/{}/activity", client.id),
        back: None,
        calls_link: Some(format!("/admin/clients/{}/calls", client.id)),
        refresh_tenant: None,
        busiest: false,
    };
    show_activity(
        &state,
        &staff,
        subject,
        query.map(|q| q.0).unwrap_or_default(),
    )
    .await
}

const CALLS_PAGE: i64 = 50;

/// The call log's query string (dates as `YYYY-MM-DD`, UTC, both inclusive).
#[derive(Debug, Default, Deserialize)]
pub struct CallsQuery {
    #[serde(default)]
    class: String,
    #[serde(default)]
    customer: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

/// One status class choice of the filter.
struct ClassOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

const CLASSES: [(&str, &str, StatusClass); 5] = [
    ("success", "Succeeded", StatusClass::Success),
    (
        "4xx",
        "Client errors (4xx, not 429)",
        StatusClass::ClientError,
    ),
    ("429", "Throttled (429)", StatusClass::Throttled),
    ("5xx", "Server errors (5xx)", StatusClass::ServerError),
    ("samgate", "samgate error codes", StatusClass::Samgate),
];

struct CallLine {
    at: String,
    client: String,
    client_link: Option<String>,
    customer: String,
    method: String,
    route: String,
    status: i32,
    status_class: &'static str,
    latency_ms: i32,
    error_code: String,
    correlation_id: String,
}

#[derive(Template)]
#[template(path = "admin/calls.html")]
struct CallsPage {
    frame: PageFrame,
    heading: String,
    base: String,
    activity_link: String,
    query: CallsQuery,
    classes: Vec<ClassOption>,
    errors: Vec<(&'static str, &'static str)>,
    calls: Vec<CallLine>,
    next: Option<String>,
    paged: bool,
}

impl CallsPage {
    fn error_for(&self, field: &str) -> Option<&'static str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, message)| *message)
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

async fn show_calls(
    state: &AppState,
    staff: &CurrentStaff,
    scope: Scope,
    heading: String,
    base: String,
    activity_link: String,
    query: CallsQuery,
) -> Result<Response, PageError> {
    let mut errors = Vec::new();
    let class = match optional(&query.class) {
        None => None,
        Some(text) => match CLASSES.iter().find(|(v, _, _)| *v == text) {
            Some((_, _, class)) => Some(*class),
            None => {
                errors.push(("class", "Choose a status class from the list."));
                None
            }
        },
    };
    let customer = match optional(&query.customer) {
        None => None,
        Some(text) => match Uuid::parse_str(text) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(("customer", "The customer must be a tenant id (a GUID)."));
                None
            }
        },
    };
    let route = optional(&query.route);
    if route.is_some_and(|r| r.len() > 200) {
        errors.push(("route", "The route is at most 200 characters."));
    }
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
    let before = match optional(&query.before) {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push((
                    "before",
                    "The page link is not valid; start again from the newest calls.",
                ));
                None
            }
        },
    };
    let mut rows = if errors.is_empty() {
        db::activity::calls(
            &state.pool,
            scope,
            &CallFilter {
                class,
                customer_tenant_id: customer,
                route,
                from: from.map(midnight),
                until: to.and_then(Date::next_day).map(midnight),
                before,
            },
            CALLS_PAGE + 1,
        )
        .await
        .map_err(PageError::internal)?
    } else {
        Vec::new()
    };
    let next = super::view::next_page(
        &mut rows,
        CALLS_PAGE as usize,
        &base,
        &[
            ("class", query.class.trim()),
            ("customer", query.customer.trim()),
            ("route", query.route.trim()),
            ("from", query.from.trim()),
            ("to", query.to.trim()),
        ],
        ("before", |last| last.id.to_string()),
    );
    let calls = rows
        .into_iter()
        .map(|c| CallLine {
            at: when(c.occurred_at),
            client: c
                .client_name
                .clone()
                .or_else(|| c.client_id.map(|id| id.to_string()))
                .unwrap_or_else(|| "none".to_owned()),
            client_link: c
                .client_id
                .map(|id| format!("/admin/clients/{id}/activity")),
            customer: c
                .customer_tenant_id
                .map(|t| t.to_string())
                .unwrap_or_default(),
            method: c.method,
            route: format!("{} {}", c.upstream, c.route),
            status: c.status,
            status_class: match c.status {
                429 => "throttled",
                s if s >= 500 => "server",
                s if s >= 400 => "client",
                _ => "ok",
            },
            latency_ms: c.latency_ms,
            error_code: c.error_code.unwrap_or_default(),
            correlation_id: c.correlation_id.unwrap_or_default(),
        })
        .collect();
    let classes = CLASSES
        .iter()
        .map(|(value, label, _)| ClassOption {
            value,
            label,
            selected: query.class.trim() == *value,
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = render(&CallsPage {
        frame: staff.frame("activity"),
        heading,
        base,
        activity_link,
        paged: before.is_some(),
        query,
        classes,
        errors,
        calls,
        next,
    })?;
    Ok((status, page).into_response())
}

fn midnight(day: Date) -> OffsetDateTime {
    day.with_time(Time::MIDNIGHT).assume_utc()
}

/// `GET /admin/partners/{id}/calls`.
pub async fn list_partner_calls(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    query: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let partner = super::partners::find_partner(&state, &id).await?;
    show_calls(
        &state,
        &staff,
        Scope::Partner(partner.tenant_id),
        format!("Calls for {}", partner.display_name),
        format!("/admin/partners/{}/calls", partner.id),
        format!("/admin/partners/{}/activity", partner.id),
        query.map(|q| q.0).unwrap_or_default(),
    )
    .await
}

/// `GET /admin/clients/{id}/calls`.
pub async fn list_client_calls(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    query: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let client = client_of(&state, &id).await?;
    show_calls(
        &state,
        &staff,
        Scope::Client(client.id),
        format!("Calls by API client {}", client.name),
        format!("/admin/clients/{}/calls", client.id),
        format!("/admin/clients/{}/activity", client.id),
        query.map(|q| q.0).unwrap_or_default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_with_the_bucket_holding_now() {
        let now = time::macros::datetime!(2026-12-09 10:22:10 UTC);
        let (since, until) = Window::Day.range(now);
        assert_eq!(until, time::macros::datetime!(2026-12-09 11:00 UTC));
        assert_eq!(since, time::macros::datetime!(2026-12-08 11:00 UTC));
        let (since, until) = Window::Hour.range(now);
        assert_eq!(until, time::macros::datetime!(2026-12-09 10:25 UTC));
        assert_eq!(since, time::macros::datetime!(2026-12-09 09:25 UTC));
        assert_eq!(Window::parse("nonsense"), Window::Day);
    }

    #[test]
    fn bars_stack_outcomes_and_the_busiest_bucket_fills_the_plot() {
        let since = time::macros::datetime!(2026-12-09 00:00 UTC);
        let rows = [BucketRow {
            bucket: since + Duration::hours(2),
            calls: 10,
            client_errors: 2,
            throttled: 3,
            server_errors: 1,
            samgate_errors: 0,
        }];
        let chart = Chart::of(&rows, Window::Day, since);
        assert_eq!(chart.bars.len(), 24);
        assert_eq!(chart.max, 10);
        let bar = &chart.bars[2];
        let total: i64 = bar.segments.iter().map(|s| s.height).sum();
        assert_eq!(total, PLOT);
        assert_eq!(bar.segments[0].class, "ok");
        assert!(chart.bars[3].segments.is_empty());
    }

    #[test]
    fn histogram_percentiles_name_the_bucket_holding_the_rank() {
        let mut counts = vec![0; db::activity::LATENCY_BOUNDS_MS.len() + 1];
        counts[3] = 10; // ≤ 100 ms
        counts[6] = 6; // ≤ 1000 ms
        assert_eq!(histogram_percentile(&counts, 0.5), "≤ 100 ms");
        assert_eq!(histogram_percentile(&counts, 0.95), "≤ 1000 ms");
        counts[10] = 100;
        assert_eq!(histogram_percentile(&counts, 0.95), "> 10000 ms");
        assert_eq!(histogram_percentile(&[0; 11], 0.5), "none");
    }
}
