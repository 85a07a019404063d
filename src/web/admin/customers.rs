//! A partner's customers as samgate's customer directory holds them (filtered, searched, keyset
//! pages by name then tenant id), "sync now", the CPV app's consent per customer and for a
//! selection of customers (grant, re-apply, remove), and the "grant to all customers" runs. Action
//! outcomes travel to the next page view as a one-time notice in the admin session.

use std::borrow::Cow;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::export;
use super::view::{PageFrame, when};
use crate::app::AppState;
use crate::app_consents::{self, Granted, Problem};
use crate::customers::SyncError;
use crate::db;
use crate::db::customers::{CustomerCounts, CustomerFilter, CustomerRow};
use crate::domain::{Actor, ConsentState, CustomerRelationship, PartnerStatus, TokenOutcome};
use crate::partner_center::ConsentRemoved;
use crate::partners::PartnerInfo;
use crate::web::errors::{PageError, render};

/// Customers per page.
const PAGE_SIZE: i64 = 50;
/// Customers one bulk action may change.
pub const MAX_SELECTED: usize = 200;
/// Partner Center calls in flight during a bulk action.
const BULK_CONCURRENCY: usize = 4;
/// Longest search text.
const MAX_SEARCH: usize = 200;
/// Longest company name a paging link may carry (Partner Center's names are far shorter).
const MAX_NAME: usize = 1024;
/// The session key of the one-time notice shown after an action.
const NOTICE_KEY: &str = "admin.customers.notice";

/// The filters of the list, as the query string spells them and as people read them.
const FILTERS: [(CustomerFilter, &str, &str); 8] = [
    (CustomerFilter::All, "all", "All current customers"),
    (
        CustomerFilter::NeedsAttention,
        "needs_attention",
        "Needs attention",
    ),
    (CustomerFilter::GdapActive, "gdap_active", "GDAP active"),
    (
        CustomerFilter::NoGdap,
        "no_gdap",
        "No GDAP (none or expired)",
    ),
    (
        CustomerFilter::ConsentMissing,
        "consent_missing",
        "App consent missing",
    ),
    (
        CustomerFilter::ConsentStale,
        "consent_stale",
        "App consent stale",
    ),
    (
        CustomerFilter::TokenRefused,
        "token_refused",
        "Token refused",
    ),
    (CustomerFilter::Removed, "removed", "No longer customers"),
];

fn filter_value(filter: CustomerFilter) -> &'static str {
    FILTERS
        .iter()
        .find(|(f, _, _)| *f == filter)
        .map_or("all", |(_, value, _)| value)
}

/// The count a filter shows next to its name (none for removed customers: not counted).
fn filter_count(filter: CustomerFilter, counts: &CustomerCounts) -> Option<i64> {
    match filter {
        CustomerFilter::All => Some(counts.total),
        CustomerFilter::NeedsAttention => Some(counts.needs_attention),
        CustomerFilter::GdapActive => Some(counts.gdap_active),
        CustomerFilter::NoGdap => Some(counts.no_gdap),
        CustomerFilter::ConsentMissing => Some(counts.consent_missing),
        CustomerFilter::ConsentStale => Some(counts.consent_stale),
        CustomerFilter::TokenRefused => Some(counts.token_refused),
        CustomerFilter::Removed => None,
    }
}

fn bad_link(why: &str) -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This customers link is not valid",
        format!(
            "{why} The link may have been cut short or changed. Start again from the partner's \
             first page of customers."
        ),
    )
}

/// What the list shows: filter, search, and the keyset position (the last row of the previous
/// page). Read from the query string, and from the hidden fields of the page's forms so an
/// action returns to the same view.
#[derive(Debug, Clone)]
struct ListView {
    filter: CustomerFilter,
    search: String,
    after: Option<(String, Uuid)>,
}

impl ListView {
    fn read<'a>(
        pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
    ) -> Result<Self, PageError> {
        let (mut state, mut search, mut after, mut after_name) = (None, None, None, None);
        for (key, value) in pairs {
            match &*key {
                "state" => state = Some(value),
                "q" => search = Some(value),
                "after" => after = Some(value),
                "after_name" => after_name = Some(value),
                _ => {}
            }
        }
        let filter = match state.as_deref().map(str::trim).unwrap_or_default() {
            "" => CustomerFilter::All,
            value => FILTERS
                .iter()
                .find(|(_, v, _)| *v == value)
                .map(|(f, _, _)| *f)
                .ok_or_else(|| bad_link("It names a filter samgate does not have."))?,
        };
        let search = search.as_deref().map(str::trim).unwrap_or_default();
        if search.chars().count() > MAX_SEARCH {
            return Err(bad_link("The search is longer than 200 characters."));
        }
        let after = match (
            after.as_deref().map(str::trim).filter(|a| !a.is_empty()),
            after_name,
        ) {
            (None, None) => None,
            (None, Some(name)) if name.is_empty() => None,
            (None, Some(_)) => {
                return Err(bad_link(
                    "It names a position without a customer tenant id.",
                ));
            }
            (Some(_), None) => {
                return Err(bad_link("It names a customer without its company name."));
            }
            (Some(id), Some(name)) => {
                let id = Uuid::parse_str(id)
                    .map_err(|_| bad_link("Its page position is not a customer tenant id."))?;
                if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
                    return Err(bad_link("Its page position is not a company name."));
                }
                Some((name.into_owned(), id))
            }
        };
        Ok(Self {
            filter,
            search: search.to_owned(),
            after,
        })
    }

    fn from_query(query: Option<&str>) -> Result<Self, PageError> {
        Self::read(url::form_urlencoded::parse(
            query.unwrap_or_default().as_bytes(),
        ))
    }

    /// The list's URL with this filter and search, at the page after `after`.
    fn link(&self, partner: Uuid, after: Option<(&str, Uuid)>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if self.filter != CustomerFilter::All {
            query.append_pair("state", filter_value(self.filter));
        }
        if !self.search.is_empty() {
            query.append_pair("q", &self.search);
        }
        if let Some((name, id)) = after {
            query.append_pair("after", &id.to_string());
            query.append_pair("after_name", name);
        }
        let query = query.finish();
        if query.is_empty() {
            format!("/admin/partners/{partner}/customers")
        } else {
            format!("/admin/partners/{partner}/customers?{query}")
        }
    }

    /// The CSV export of this filter and search (every page of it).
    fn export_link(&self, partner: Uuid) -> String {
        let list = self.link(partner, None);
        match list.split_once('?') {
            Some((path, query)) => format!("{path}.csv?{query}"),
            None => format!("{list}.csv"),
        }
    }

    /// The URL of the page this view shows (to return to after an action).
    fn current(&self, partner: Uuid) -> String {
        self.link(
            partner,
            self.after.as_ref().map(|(name, id)| (name.as_str(), *id)),
        )
    }
}

/// How an outcome reads: fine, worth a look, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Tone {
    Ok,
    Warn,
    Bad,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Bad => "bad",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "Done",
            Self::Warn => "Warning",
            Self::Bad => "Not done",
        }
    }
}

/// One customer's outcome of an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutcomeLine {
    tenant_id: Uuid,
    name: String,
    tone: Tone,
    text: String,
}

/// The notice shown once on the partner's customers page after an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Notice {
    partner_id: Uuid,
    tone: Tone,
    text: String,
    outcomes: Vec<OutcomeLine>,
}

impl Notice {
    /// `success` or `notice`, the flash classes of the admin pages.
    fn class(&self) -> &'static str {
        match self.tone {
            Tone::Ok => "success",
            Tone::Warn | Tone::Bad => "notice",
        }
    }
}

async fn redirect_with(session: &Session, notice: Notice, to: &str) -> Result<Response, PageError> {
    session
        .insert(NOTICE_KEY, notice)
        .await
        .map_err(PageError::internal)?;
    Ok(Redirect::to(to).into_response())
}

/// A fact shown as a coloured label.
struct Badge {
    label: &'static str,
    class: &'static str,
}

impl Badge {
    const fn new(label: &'static str, class: &'static str) -> Self {
        Self { label, class }
    }
}

/// A failed consent action on a customer, as `app_consents` recorded it.
struct ConsentFailure {
    code: String,
    advice: String,
}

struct CustomerLine {
    tenant_id: Uuid,
    name: String,
    domain: String,
    removed: String,
    gdap: Badge,
    gdap_detail: String,
    /// No active GDAP: a consent would work, samgate could still not act there.
    without_gdap: bool,
    consent: Badge,
    consent_detail: String,
    /// The last consent action failed.
    consent_failure: Option<ConsentFailure>,
    token: Badge,
    token_codes: String,
    token_advice: String,
    token_checked: String,
    offer_grant: bool,
    offer_reapply: bool,
    offer_remove: bool,
    changed: bool,
}

/// `2027-03-01`.
fn day(at: OffsetDateTime) -> String {
    let date = at.to_offset(time::UtcOffset::UTC).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn gdap_facts(row: &CustomerRow, now: OffsetDateTime) -> (Badge, String) {
    match row.relationship {
        CustomerRelationship::GdapActive => {
            let roles = plural(row.gdap_roles.len(), "role", "roles");
            let detail = match row.gdap_ends_at {
                Some(end) if end <= now => format!("{roles} · ended {}", day(end)),
                Some(end) => format!("{roles} · ends {}", day(end)),
                None => roles,
            };
            (Badge::new("GDAP active", "ok"), detail)
        }
        CustomerRelationship::GdapExpired => (
            Badge::new("GDAP expired", "bad"),
            row.gdap_ends_at
                .map(|end| format!("ended {}", day(end)))
                .unwrap_or_else(|| "no active relationship".to_owned()),
        ),
        CustomerRelationship::None => (
            Badge::new("No GDAP", "bad"),
            "no relationship with this customer".to_owned(),
        ),
        CustomerRelationship::Listed => (
            Badge::new("GDAP unknown", "neutral"),
            "listed by Partner Center; GDAP was not readable".to_owned(),
        ),
        CustomerRelationship::Unknown => (
            Badge::new("Not synced", "neutral"),
            "not seen by a sync yet".to_owned(),
        ),
    }
}

fn customer_line(
    row: CustomerRow,
    failure: Option<&db::app_consents::AppConsentRow>,
    changed: &[Uuid],
    now: OffsetDateTime,
) -> CustomerLine {
    let (gdap, gdap_detail) = gdap_facts(&row, now);
    let removed = row.removed_at.is_some();
    let since = row
        .consent_changed_at
        .map(|at| format!("since {}", when(at)))
        .unwrap_or_default();
    let (consent, consent_detail) = match row.consent {
        ConsentState::Granted => (Badge::new("Granted", "ok"), since),
        ConsentState::Stale => (
            Badge::new("Stale", "warn"),
            "granted with other permissions than configured — re-apply".to_owned(),
        ),
        ConsentState::None => (Badge::new("Not granted", "neutral"), String::new()),
    };
    let token_code = row.token_code.as_deref().map(|code| {
        if code.starts_with("AADSTS") {
            code.to_owned()
        } else {
            format!("AADSTS{code}")
        }
    });
    let (token, token_codes, token_advice) = match row.token_outcome {
        TokenOutcome::Ok => (Badge::new("OK", "ok"), String::new(), String::new()),
        TokenOutcome::Refused => (
            Badge::new("Refused", "bad"),
            row.token_error
                .iter()
                .cloned()
                .chain(token_code)
                .collect::<Vec<_>>()
                .join(" · "),
            row.token_advice.clone().unwrap_or_default(),
        ),
        TokenOutcome::Unknown => (
            Badge::new("Not tried", "neutral"),
            String::new(),
            String::new(),
        ),
    };
    CustomerLine {
        name: if row.company_name.is_empty() {
            "(name not known yet)".to_owned()
        } else {
            row.company_name
        },
        domain: row.domain,
        removed: row.removed_at.map(when).unwrap_or_default(),
        without_gdap: row.relationship.denies_access(),
        offer_grant: !removed && row.consent == ConsentState::None,
        offer_reapply: !removed && row.consent == ConsentState::Stale,
        offer_remove: row.consent != ConsentState::None,
        consent_failure: failure
            .filter(|f| f.state == "failed")
            .map(|f| ConsentFailure {
                code: f.error_code.clone().unwrap_or_default(),
                advice: f.advice.clone().unwrap_or_default(),
            }),
        gdap,
        gdap_detail,
        consent,
        consent_detail,
        token,
        token_codes,
        token_advice,
        token_checked: row.token_checked_at.map(when).unwrap_or_default(),
        changed: changed.contains(&row.tenant_id),
        tenant_id: row.tenant_id,
    }
}

struct GrantLine {
    resource: String,
    scopes: String,
}

struct RunSummary {
    id: Uuid,
    state: String,
    started: String,
}

struct FilterOption {
    value: &'static str,
    label: String,
    selected: bool,
}

/// What the page says about the directory's last sync.
struct SyncFacts {
    synced: Option<String>,
    gdap_readable: bool,
    gdap_unreadable: bool,
    error: String,
}

#[derive(Template)]
#[template(path = "admin/customers.html")]
struct CustomersPage {
    frame: PageFrame,
    partner_id: Uuid,
    partner_name: String,
    partner_tenant: String,
    offboarded: bool,
    /// Operator (or admin) and the partner not offboarded: actions are offered.
    can_act: bool,
    notice: Option<Notice>,
    sync: SyncFacts,
    filters: Vec<FilterOption>,
    state: &'static str,
    search: String,
    filtered: bool,
    after: String,
    after_name: String,
    customers: Vec<CustomerLine>,
    without_gdap: usize,
    removed_view: bool,
    next: Option<String>,
    first: Option<String>,
    grants: Vec<GrantLine>,
    app_id: String,
    latest_run: Option<RunSummary>,
    max_selected: usize,
    export: String,
}

pub(super) async fn partner_info(state: &AppState, id: &str) -> Result<PartnerInfo, PageError> {
    let partner = super::partners::find_partner(state, id).await?;
    Ok(PartnerInfo {
        id: partner.id,
        tenant_id: partner.tenant_id,
        display_name: partner.display_name,
        status: partner.status,
        status_code: partner.status_code,
        status_reason: partner.status_reason,
    })
}

pub(super) fn is_offboarded(partner: &PartnerInfo) -> bool {
    partner.status == PartnerStatus::Offboarded
}

fn grant_lines(state: &AppState) -> Vec<GrantLine> {
    state
        .config
        .app_consent_grants
        .iter()
        .map(|g| GrantLine {
            resource: if g.enterprise_application_id == crate::config::GRAPH_APP_ID {
                format!("Microsoft Graph ({})", g.enterprise_application_id)
            } else {
                g.enterprise_application_id.to_string()
            },
            scopes: g.scopes.join(", "),
        })
        .collect()
}

/// `GET /admin/partners/{id}/customers`: a page of the partner's customers from the directory,
/// with their GDAP, app consent and token facts.
pub async fn list_customers(
    State(state): State<AppState>,
    session: Session,
    staff: CurrentStaff,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let view = ListView::from_query(query.as_deref())?;
    let partner = partner_info(&state, &id).await?;
    let notice = session
        .remove::<Notice>(NOTICE_KEY)
        .await
        .map_err(PageError::internal)?
        .filter(|n| n.partner_id == partner.id);
    let mut rows = db::customers::list(
        &state.pool,
        partner.id,
        view.filter,
        Some(view.search.as_str()),
        view.after.as_ref().map(|(name, id)| (name.as_str(), *id)),
        PAGE_SIZE + 1,
    )
    .await
    .map_err(PageError::internal)?;
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    let next = more
        .then(|| rows.last())
        .flatten()
        .map(|last| view.link(partner.id, Some((&last.company_name, last.tenant_id))));
    let first = view.after.as_ref().map(|_| view.link(partner.id, None));
    let counts = db::customers::counts(&state.pool, partner.id)
        .await
        .map_err(PageError::internal)?;
    let sync = db::customers::sync_state(&state.pool, partner.id)
        .await
        .map_err(PageError::internal)?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.tenant_id).collect();
    let attempts = db::app_consents::states(&state.pool, partner.id, &ids)
        .await
        .map_err(PageError::internal)?;
    let changed: Vec<Uuid> = notice
        .iter()
        .flat_map(|n| n.outcomes.iter().map(|o| o.tenant_id))
        .collect();
    let now = state.clock.now();
    let customers: Vec<CustomerLine> = rows
        .into_iter()
        .map(|row| {
            let attempt = attempts
                .iter()
                .find(|a| a.customer_tenant_id == row.tenant_id);
            customer_line(row, attempt, &changed, now)
        })
        .collect();
    let latest_run = db::app_consents::latest_run(&state.pool, partner.id)
        .await
        .map_err(PageError::internal)?
        .map(|r| RunSummary {
            id: r.id,
            state: r.state,
            started: when(r.started_at),
        });
    let (after_name, after) = view
        .after
        .clone()
        .map(|(name, id)| (name, id.to_string()))
        .unwrap_or_default();
    let readable = sync.as_ref().and_then(|s| s.customers_gdap_readable);
    let offboarded = is_offboarded(&partner);
    let page = CustomersPage {
        can_act: staff.can(super::Role::Operator) && !offboarded,
        frame: staff.frame("partners"),
        partner_id: partner.id,
        partner_tenant: partner.tenant_id.to_string(),
        offboarded,
        partner_name: partner.display_name,
        notice,
        sync: SyncFacts {
            synced: sync.as_ref().and_then(|s| s.customers_synced_at).map(when),
            gdap_readable: readable == Some(true),
            gdap_unreadable: readable == Some(false),
            error: sync
                .and_then(|s| s.customers_sync_error)
                .unwrap_or_default(),
        },
        filters: FILTERS
            .iter()
            .map(|(filter, value, label)| FilterOption {
                value,
                label: match filter_count(*filter, &counts) {
                    Some(n) => format!("{label} ({n})"),
                    None => (*label).to_owned(),
                },
                selected: *filter == view.filter,
            })
            .collect(),
        state: filter_value(view.filter),
        filtered: view.filter != CustomerFilter::All || !view.search.is_empty(),
        search: view.search.clone(),
        after,
        after_name,
        without_gdap: customers
            .iter()
            .filter(|c| c.without_gdap && c.offer_grant)
            .count(),
        customers,
        removed_view: view.filter == CustomerFilter::Removed,
        next,
        first,
        grants: grant_lines(&state),
        app_id: state.config.microsoft.client_id.to_string(),
        latest_run,
        max_selected: MAX_SELECTED,
        export: view.export_link(partner.id),
    };
    Ok(render(&page)?.into_response())
}

/// `GET /admin/partners/{id}/customers.csv`: the customers of the list's filter and search
/// (`state`, `q`) as CSV, by name then tenant id, streamed ([`export::download`]).
pub async fn export_customers(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let ListView { filter, search, .. } = ListView::from_query(query.as_deref())?;
    let partner = partner_info(&state, &id).await?;
    let pool = state.pool.clone();
    let columns = [
        "company_name",
        "tenant_id",
        "domain",
        "gdap",
        "gdap_roles",
        "gdap_ends_utc",
        "app_consent",
        "app_consent_changed_utc",
        "token",
        "token_error",
        "token_code",
        "token_checked_utc",
        "removed_utc",
    ];
    let filename = format!("samgate-customers-{}.csv", partner.tenant_id);
    export::download(
        &filename,
        &columns,
        None,
        move |after: Option<(String, Uuid)>| {
            let (pool, search) = (pool.clone(), search.clone());
            async move {
                let rows = db::customers::list(
                    &pool,
                    partner.id,
                    filter,
                    Some(search.as_str()),
                    after.as_ref().map(|(name, id)| (name.as_str(), *id)),
                    export::BATCH,
                )
                .await?;
                let records: Vec<Vec<String>> = rows.iter().map(customer_record).collect();
                let next = export::next_after(&rows, |last| {
                    Some((last.company_name.clone(), last.tenant_id))
                });
                Ok::<_, sqlx::Error>((records, next))
            }
        },
    )
}

/// One customer as the export's cells.
fn customer_record(row: &CustomerRow) -> Vec<String> {
    let at = |t: Option<OffsetDateTime>| t.map(when).unwrap_or_default();
    vec![
        row.company_name.clone(),
        row.tenant_id.to_string(),
        row.domain.clone(),
        row.relationship.as_str().to_owned(),
        row.gdap_roles.len().to_string(),
        at(row.gdap_ends_at),
        row.consent.as_str().to_owned(),
        at(row.consent_changed_at),
        row.token_outcome.as_str().to_owned(),
        row.token_error.clone().unwrap_or_default(),
        row.token_code.clone().unwrap_or_default(),
        at(row.token_checked_at),
        at(row.removed_at),
    ]
}

fn sync_notice(partner: Uuid, result: Result<crate::customers::SyncReport, Problem>) -> Notice {
    let (tone, text) = match result {
        Ok(report) => {
            let mut text = format!(
                "Customers synced: Partner Center lists {}; {} new, {} no longer customers, {} with changed facts.",
                plural(report.listed, "customer", "customers"),
                report.added,
                report.removed,
                report.changed,
            );
            if report.gdap_readable {
                text.push_str(&format!(
                    " GDAP relationships were read: {} with the partner.",
                    plural(
                        report.gdap_customers,
                        "customer has one",
                        "customers have one"
                    )
                ));
                (Tone::Ok, text)
            } else {
                text.push_str(
                    " GDAP relationships could not be read (Microsoft Graph refused the partner's \
                     token), so the GDAP column shows what was last known.",
                );
                (Tone::Warn, text)
            }
        }
        Err(problem) => (
            Tone::Bad,
            format!(
                "Customers not synced: {}. {} (code {})",
                problem.summary, problem.advice, problem.code
            ),
        ),
    };
    Notice {
        partner_id: partner,
        tone,
        text,
        outcomes: Vec::new(),
    }
}

/// The list view carried by an action form's hidden fields.
fn view_of_form(body: &[u8]) -> ListView {
    // A tampered return view only loses the view: the action itself does not depend on it.
    ListView::read(url::form_urlencoded::parse(body)).unwrap_or(ListView {
        filter: CustomerFilter::All,
        search: String::new(),
        after: None,
    })
}

/// `POST /admin/partners/{id}/customers/sync` (operator): reads the partner's customers and GDAP
/// relationships again now and returns to the list with what the sync found.
pub async fn sync_customers(
    State(state): State<AppState>,
    session: Session,
    staff: CurrentStaff,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let back = view_of_form(&body).current(partner.id);
    if is_offboarded(&partner) {
        let notice = Notice {
            partner_id: partner.id,
            tone: Tone::Bad,
            text: "Customers not synced: this partner is offboarded, so samgate holds no consent \
                   to read its customers."
                .to_owned(),
            outcomes: Vec::new(),
        };
        return redirect_with(&session, notice, &back).await;
    }
    let result = match crate::customers::sync(&state, &partner, &staff.actor()).await {
        Ok(report) => Ok(report),
        Err(SyncError::Busy) => {
            let notice = Notice {
                partner_id: partner.id,
                tone: Tone::Warn,
                text: "Another sync of this partner's customers was running; the list shows its \
                       result once it ends. Reload in a moment."
                    .to_owned(),
                outcomes: Vec::new(),
            };
            return redirect_with(&session, notice, &back).await;
        }
        Err(SyncError::Token(err)) => Err(Problem::from_broker(&err)),
        Err(SyncError::PartnerCenter(err)) => Err(Problem::from_partner_center(&err)),
        Err(SyncError::Database(err)) => return Err(PageError::internal(err)),
    };
    redirect_with(&session, sync_notice(partner.id, result), &back).await
}

/// A change of the CPV app's consent in customer tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsentAction {
    Grant,
    Reapply,
    Remove,
}

impl ConsentAction {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "grant" => Some(Self::Grant),
            "reapply" => Some(Self::Reapply),
            "remove" => Some(Self::Remove),
            _ => None,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Grant => "Grant app consent",
            Self::Reapply => "Re-apply app consent",
            Self::Remove => "Remove app consent",
        }
    }
}

fn problem_text(verb: &str, problem: &Problem) -> String {
    format!(
        "{verb}: {} ({}). {}",
        problem.summary, problem.code, problem.advice
    )
}

/// Does `action` for one customer of the directory; returns how it went, in words.
async fn change_consent(
    state: &AppState,
    partner: &PartnerInfo,
    customer: Uuid,
    action: ConsentAction,
    actor: &Actor,
) -> OutcomeLine {
    let line = |name: String, tone: Tone, text: &str| OutcomeLine {
        tenant_id: customer,
        name,
        tone,
        text: text.to_owned(),
    };
    let row = match db::customers::find(&state.pool, partner.id, customer).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return line(
                customer.to_string(),
                Tone::Bad,
                "Not in this partner's customer directory; nothing was done. Sync the customers \
                 if it is a new customer.",
            );
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read a customer for an app consent change");
            return line(
                customer.to_string(),
                Tone::Bad,
                "samgate's database did not answer; nothing was done. Try again in a moment.",
            );
        }
    };
    let name = if row.company_name.is_empty() {
        customer.to_string()
    } else {
        row.company_name.clone()
    };
    let without_gdap = row.relationship.denies_access();
    let granted = |text: &str| {
        if without_gdap {
            line(
                name.clone(),
                Tone::Warn,
                &format!(
                    "{text}, but samgate cannot act there without GDAP: the partner has no active \
                     GDAP relationship with this customer."
                ),
            )
        } else {
            line(name.clone(), Tone::Ok, &format!("{text}."))
        }
    };
    match action {
        ConsentAction::Grant | ConsentAction::Reapply if row.removed_at.is_some() => line(
            name.clone(),
            Tone::Bad,
            "No longer a customer of this partner; consent was not granted.",
        ),
        ConsentAction::Grant if row.consent == ConsentState::Stale => line(
            name.clone(),
            Tone::Warn,
            "Not changed: its consent holds other permissions than configured. Use Re-apply to \
             replace them.",
        ),
        ConsentAction::Grant => match app_consents::grant(state, partner, customer, actor).await {
            Ok(Granted::Created) => granted("Granted"),
            Ok(Granted::AlreadyCurrent) => granted("Granted (it was there already)"),
            Ok(Granted::ExistsWithOtherGrants) => line(
                name.clone(),
                Tone::Warn,
                "A consent already exists with permissions samgate did not grant; it is marked \
                 stale. Use Re-apply to replace it with the configured permissions.",
            ),
            Err(problem) => line(
                name.clone(),
                Tone::Bad,
                &problem_text("Not granted", &problem),
            ),
        },
        ConsentAction::Reapply => {
            match app_consents::reapply(state, partner, customer, actor).await {
                Ok(_) => granted("Re-applied with the configured permissions"),
                Err(app_consents::ReapplyError::Remove(problem)) => line(
                    name.clone(),
                    Tone::Bad,
                    &problem_text(
                        "Not re-applied (the old consent could not be removed)",
                        &problem,
                    ),
                ),
                Err(app_consents::ReapplyError::Grant(problem)) => line(
                    name.clone(),
                    Tone::Bad,
                    &problem_text(
                        "The old consent was removed but the new one was not granted",
                        &problem,
                    ),
                ),
            }
        }
        ConsentAction::Remove => {
            match app_consents::remove(state, partner, customer, actor).await {
                Ok(ConsentRemoved::Removed) => line(name.clone(), Tone::Ok, "Removed."),
                Ok(ConsentRemoved::Absent) => {
                    line(name.clone(), Tone::Ok, "Removed (it was not there).")
                }
                Err(problem) => line(
                    name.clone(),
                    Tone::Bad,
                    &problem_text("Not removed", &problem),
                ),
            }
        }
    }
}

/// Does `action` for each customer (a few at a time) and returns to the list with the outcomes.
async fn change_consents(
    state: &AppState,
    session: &Session,
    staff: &CurrentStaff,
    partner: &PartnerInfo,
    customers: &[Uuid],
    action: ConsentAction,
    back: &str,
) -> Result<Response, PageError> {
    use futures_util::StreamExt;
    if is_offboarded(partner) {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            "This partner is offboarded",
            "samgate holds no consent for it any more, so it cannot reach its customers.",
        ));
    }
    let actor = staff.actor();
    let outcomes: Vec<OutcomeLine> = futures_util::stream::iter(customers.iter().copied())
        .map(|customer| change_consent(state, partner, customer, action, &actor))
        .buffered(BULK_CONCURRENCY)
        .collect()
        .await;
    let count = |tone: Tone| outcomes.iter().filter(|o| o.tone == tone).count();
    let (ok, warn, bad) = (count(Tone::Ok), count(Tone::Warn), count(Tone::Bad));
    let tone = if bad > 0 {
        Tone::Bad
    } else if warn > 0 {
        Tone::Warn
    } else {
        Tone::Ok
    };
    let mut text = format!(
        "{} for {}: {ok} done",
        action.title(),
        plural(outcomes.len(), "customer", "customers")
    );
    if warn > 0 {
        text.push_str(&format!(", {warn} with a warning"));
    }
    if bad > 0 {
        text.push_str(&format!(", {bad} not done"));
    }
    text.push('.');
    let notice = Notice {
        partner_id: partner.id,
        tone,
        text,
        outcomes,
    };
    redirect_with(session, notice, back).await
}

fn bad_selection(message: &str) -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This selection cannot be used",
        format!("{message} Go back to the partner's customers and select again."),
    )
}

/// `POST /admin/partners/{id}/customers/app-consents` (operator): grants, re-applies or removes
/// the CPV app's consent for the selected customers (`customer`, repeated; at most
/// [`MAX_SELECTED`]), each through `app_consents`, and reports each outcome.
pub async fn change_app_consents(
    State(state): State<AppState>,
    session: Session,
    staff: CurrentStaff,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let back = view_of_form(&body).current(partner.id);
    let mut action = None;
    let mut customers: Vec<Uuid> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        match &*key {
            "action" => action = ConsentAction::parse(&value),
            "customer" => {
                let customer = Uuid::parse_str(value.trim())
                    .map_err(|_| bad_selection("A selected customer is not a tenant id."))?;
                if !customers.contains(&customer) {
                    customers.push(customer);
                }
                if customers.len() > MAX_SELECTED {
                    return Err(bad_selection(&format!(
                        "At most {MAX_SELECTED} customers can be changed at once."
                    )));
                }
            }
            _ => {}
        }
    }
    let action = action.ok_or_else(|| bad_selection("The form did not say what to do."))?;
    if customers.is_empty() {
        let notice = Notice {
            partner_id: partner.id,
            tone: Tone::Warn,
            text: format!(
                "{}: no customer was selected. Tick the customers first.",
                action.title()
            ),
            outcomes: Vec::new(),
        };
        return redirect_with(&session, notice, &back).await;
    }
    change_consents(
        &state, &session, &staff, &partner, &customers, action, &back,
    )
    .await
}

fn customer_id(text: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(text).map_err(|_| {
        PageError::new(
            StatusCode::NOT_FOUND,
            "Customer not found",
            "This is not a customer tenant id. Go back to the partner's customers.",
        )
    })
}

/// `POST /admin/partners/{id}/customers/{customer}/app-consent` (operator): grants the CPV app's
/// consent in one customer, or re-applies it when `action=reapply`.
pub async fn grant_app_consent(
    State(state): State<AppState>,
    session: Session,
    staff: CurrentStaff,
    Path((id, customer)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let customer = customer_id(&customer)?;
    let back = view_of_form(&body).current(partner.id);
    let action = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "action")
        .and_then(|(_, value)| ConsentAction::parse(&value))
        .filter(|a| *a == ConsentAction::Reapply)
        .unwrap_or(ConsentAction::Grant);
    change_consents(
        &state,
        &session,
        &staff,
        &partner,
        &[customer],
        action,
        &back,
    )
    .await
}

/// `POST /admin/partners/{id}/customers/{customer}/app-consent/remove` (operator): removes the
/// CPV app's consent from one customer (absent is success).
pub async fn remove_app_consent(
    State(state): State<AppState>,
    session: Session,
    staff: CurrentStaff,
    Path((id, customer)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let customer = customer_id(&customer)?;
    let back = view_of_form(&body).current(partner.id);
    change_consents(
        &state,
        &session,
        &staff,
        &partner,
        &[customer],
        ConsentAction::Remove,
        &back,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(query: &str) -> Result<ListView, StatusCode> {
        ListView::from_query(Some(query)).map_err(|e| e.status())
    }

    #[test]
    fn a_paging_link_round_trips_through_the_query_string() {
        let id = Uuid::new_v4();
        let start = ListView {
            filter: CustomerFilter::NeedsAttention,
            search: "contoso & co".into(),
            after: Some(("Zoë & Söhne, \"Ltd\"".into(), id)),
        };
        let partner = Uuid::new_v4();
        let link = start.current(partner);
        let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let back = ListView::from_query(Some(query)).expect("valid");
        assert_eq!(back.filter, start.filter);
        assert_eq!(back.search, start.search);
        assert_eq!(back.after, start.after);
        assert_eq!(
            ListView::from_query(None).expect("empty").current(partner),
            format!("/admin/partners/{partner}/customers")
        );
    }

    #[test]
    fn broken_paging_links_and_unknown_filters_are_bad_requests() {
        let id = Uuid::new_v4();
        for query in [
            "after=not-a-uuid&after_name=Contoso".to_owned(),
            format!("after={id}"),
            "after_name=Contoso".to_owned(),
            format!("after={id}&after_name=A%0D%0AB"),
            "state=everything".to_owned(),
            format!("q={}", "x".repeat(201)),
        ] {
            assert_eq!(view(&query).err(), Some(StatusCode::BAD_REQUEST), "{query}");
        }
        assert!(
            view(&format!("after={id}&after_name=")).is_ok(),
            "empty names exist"
        );
        assert!(view("state=needs_attention&q=%20").is_ok());
    }

    #[test]
    fn every_filter_has_a_distinct_query_value() {
        for (filter, value, _) in FILTERS {
            assert_eq!(filter_value(filter), value);
            assert_eq!(FILTERS.iter().filter(|(_, v, _)| *v == value).count(), 1);
        }
    }
}
