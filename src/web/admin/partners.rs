//! Dashboard, partners list (search, status filter, keyset pages), partner detail with token
//! health, and the partner actions: re-consent invitation, refresh now, offboard.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::export;
use super::flash::Flash;
use super::view::{PageFrame, STATUSES, StatusBadge, advice_for, consent_link, when, when_or};
use crate::app::AppState;
use crate::broker::BrokerError;
use crate::db;
use crate::db::staff::{PartnerFilter, PartnerRow, PartnerSort};
use crate::onboarding;
use crate::web::errors::{PageError, render};

const PAGE_SIZE: i64 = 50;

struct StatusCount {
    badge: StatusBadge,
    count: i64,
}

struct PartnerLine {
    id: Uuid,
    name: String,
    tenant_id: String,
    domain: String,
    badge: StatusBadge,
    reason: String,
    code: String,
    advice: String,
    changed: String,
    refreshed: String,
    used: String,
}

impl PartnerLine {
    fn of(row: PartnerRow) -> Self {
        let reason = row.status_reason.unwrap_or_default();
        // Advice is said once: not again when the recorded reason already carries it.
        let advice = advice_for(row.status_code.as_deref())
            .filter(|advice| !reason.contains(advice))
            .unwrap_or_default()
            .to_owned();
        Self {
            id: row.id,
            tenant_id: row.tenant_id.to_string(),
            domain: row.domain.unwrap_or_default(),
            badge: StatusBadge::of(row.status.as_str()),
            advice,
            reason,
            code: row.status_code.unwrap_or_default(),
            changed: when(row.status_changed_at),
            refreshed: when_or(row.refreshed_at, "never"),
            used: when_or(row.last_used_at, "never"),
            name: row.display_name,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    frame: PageFrame,
    counts: Vec<StatusCount>,
    total: i64,
    pending_invitations: i64,
    failures: Vec<PartnerLine>,
    never_used: i64,
    unused_days: i64,
    unused_total: i64,
    unused: Vec<UnusedLine>,
    /// Active API keys of enabled clients expiring within two weeks (admins only).
    keys_expiring_soon: Option<usize>,
}

/// Days without refresh or use after which the dashboard warns (Microsoft ends a refresh token
/// after 90 days without use).
const UNUSED_WARNING_DAYS: i64 = 60;
const REFRESH_TOKEN_INACTIVITY_DAYS: i64 = 90;

struct UnusedLine {
    partner: PartnerLine,
    days_left: i64,
}

async fn count_keys_expiring_soon(
    state: &AppState,
    now: time::OffsetDateTime,
) -> Result<usize, PageError> {
    let mut count = 0;
    for client in crate::api_keys::list_clients(&state.pool)
        .await
        .map_err(PageError::internal)?
        .into_iter()
        .filter(|c| c.disabled_at.is_none())
    {
        count += crate::api_keys::list_keys(&state.pool, client.id)
            .await
            .map_err(PageError::internal)?
            .iter()
            .filter(|k| {
                super::clients::key_state(k.revoked_at.is_some(), k.expires_at, now).0
                    == "expires soon"
            })
            .count();
    }
    Ok(count)
}

/// `GET /admin`: partners by health, pending invitations, recent failures.
pub async fn show_dashboard(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, PageError> {
    let by_status = db::staff::count_partners_by_status(&state.pool)
        .await
        .map_err(PageError::internal)?;
    let counts: Vec<StatusCount> = STATUSES
        .into_iter()
        .map(|status| StatusCount {
            badge: StatusBadge::of(status),
            count: by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n),
        })
        .collect();
    let pending_invitations = db::staff::count_pending_invitations(&state.pool, state.clock.now())
        .await
        .map_err(PageError::internal)?;
    let failures = db::staff::failing_partners(&state.pool, 20)
        .await
        .map_err(PageError::internal)?;
    let now = state.clock.now();
    let never_used = db::dashboard::count_never_used(&state.pool)
        .await
        .map_err(PageError::internal)?;
    let (unused_total, unused) = db::dashboard::unused_since(
        &state.pool,
        now - time::Duration::days(UNUSED_WARNING_DAYS),
        20,
    )
    .await
    .map_err(PageError::internal)?;
    let unused = unused
        .into_iter()
        .map(|row| {
            let last_activity = row
                .refreshed_at
                .into_iter()
                .chain(row.last_used_at)
                .max()
                .unwrap_or(now);
            UnusedLine {
                days_left: (REFRESH_TOKEN_INACTIVITY_DAYS - (now - last_activity).whole_days())
                    .max(0),
                partner: PartnerLine::of(row),
            }
        })
        .collect();
    let keys_expiring_soon = if staff.can(crate::staff::Role::Admin) {
        Some(count_keys_expiring_soon(&state, now).await?)
    } else {
        None
    };
    Ok(render(&DashboardPage {
        frame: staff.frame("dashboard"),
        keys_expiring_soon,
        never_used,
        unused_days: UNUSED_WARNING_DAYS,
        unused_total,
        unused,
        total: by_status.iter().map(|(_, n)| n).sum(),
        counts,
        pending_invitations,
        failures: failures.into_iter().map(PartnerLine::of).collect(),
    })?
    .into_response())
}

/// The partners list's query string.
#[derive(Debug, Default, Deserialize)]
pub struct PartnersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    after: String,
}

/// The partners list's orders as the query string spells them (by name when absent).
const SORTS: [(&str, PartnerSort); 4] = [
    ("name", PartnerSort::Name),
    ("status", PartnerSort::Status),
    ("refreshed", PartnerSort::Refreshed),
    ("used", PartnerSort::Used),
];

/// The order a query string asks for; one samgate does not have is a bad query.
fn sort_of(value: &str) -> Result<PartnerSort, PageError> {
    match value.trim() {
        "" => Ok(PartnerSort::Name),
        value => SORTS
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, sort)| *sort)
            .ok_or_else(bad_query),
    }
}

/// The query-string value of a sort; empty for the default, so default links stay short.
fn sort_value(sort: PartnerSort) -> &'static str {
    SORTS
        .iter()
        .find(|(_, s)| *s == sort && sort != PartnerSort::Name)
        .map_or("", |(v, _)| v)
}

/// A column header that sorts the list: its link and its `aria-sort`.
struct SortHeader {
    href: String,
    aria: &'static str,
}

/// `GET /admin/partners.csv`: the partners of the search (`q`, `status`) as CSV, by name,
/// streamed ([`export::download`]).
pub async fn export_partners(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    query: Result<Query<PartnersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|_| bad_query())?;
    let q = query.q.trim().to_owned();
    if q.chars().count() > 200 {
        return Err(bad_query());
    }
    let status = STATUSES.into_iter().find(|s| *s == query.status);
    let sort = sort_of(&query.sort)?;
    let pool = state.pool.clone();
    let columns = [
        "name",
        "tenant_id",
        "domain",
        "status",
        "status_reason",
        "status_code",
        "status_changed_utc",
        "last_refresh_utc",
        "last_used_utc",
    ];
    export::download("samgate-partners.csv", &columns, None, move |after| {
        let (pool, q) = (pool.clone(), q.clone());
        async move {
            let tenant_id = Uuid::parse_str(&q).ok();
            let filter = PartnerFilter {
                text: (!q.is_empty() && tenant_id.is_none()).then_some(q.as_str()),
                tenant_id,
                status,
                sort,
                after,
            };
            let rows = db::staff::list_partners(&pool, &filter, export::BATCH).await?;
            let records: Vec<Vec<String>> = rows.iter().map(partner_record).collect();
            Ok::<_, sqlx::Error>((records, export::next_after(&rows, |last| Some(last.id))))
        }
    })
}

/// One partner as the export's cells.
fn partner_record(p: &PartnerRow) -> Vec<String> {
    vec![
        p.display_name.clone(),
        p.tenant_id.to_string(),
        p.domain.clone().unwrap_or_default(),
        p.status.as_str().to_owned(),
        p.status_reason.clone().unwrap_or_default(),
        p.status_code.clone().unwrap_or_default(),
        when(p.status_changed_at),
        when_or(p.refreshed_at, ""),
        when_or(p.last_used_at, ""),
    ]
}

struct StatusOption {
    badge: StatusBadge,
    selected: bool,
}

#[derive(Template)]
#[template(path = "admin/partners.html")]
struct PartnersPage {
    frame: PageFrame,
    q: String,
    statuses: Vec<StatusOption>,
    /// The current order's query value (empty: by name).
    sort: &'static str,
    by_name: SortHeader,
    by_status: SortHeader,
    by_refreshed: SortHeader,
    by_used: SortHeader,
    partners: Vec<PartnerLine>,
    next: Option<String>,
    first: Option<String>,
    filtered: bool,
    export: String,
}

fn bad_query() -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This search is not valid",
        "Some of the search fields could not be read. Start again from the partners page.",
    )
}

/// `GET /admin/partners`: search by name, domain or tenant id; filter by status; sort by name,
/// status, last refresh or last use; keyset pages in that order.
pub async fn list_partners(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<PartnersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|_| bad_query())?;
    let q = query.q.trim();
    if q.chars().count() > 200 {
        return Err(bad_query());
    }
    let status = STATUSES.into_iter().find(|s| *s == query.status);
    let sort = sort_of(&query.sort)?;
    let after = match query.after.trim() {
        "" => None,
        cursor => Some(Uuid::parse_str(cursor).map_err(|_| bad_query())?),
    };
    let tenant_id = Uuid::parse_str(q).ok();
    let filter = PartnerFilter {
        text: (!q.is_empty() && tenant_id.is_none()).then_some(q),
        tenant_id,
        status,
        sort,
        after,
    };
    let mut rows = db::staff::list_partners(&state.pool, &filter, PAGE_SIZE + 1)
        .await
        .map_err(PageError::internal)?;
    let status_text = status.unwrap_or("");
    let search = |sort: PartnerSort| {
        let mut pairs = vec![("q", q), ("status", status_text)];
        if sort != PartnerSort::Name {
            pairs.push(("sort", sort_value(sort)));
        }
        pairs
    };
    let next = super::view::next_page(
        &mut rows,
        PAGE_SIZE as usize,
        "/admin/partners",
        &search(sort),
        ("after", |last| last.id.to_string()),
    );
    let link = |pairs: &[(&str, &str)]| {
        format!(
            "/admin/partners?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    };
    // Back to the first page of the same search (the old link carried an empty `after=`).
    let first = after.map(|_| link(&[search(sort), vec![("after", "")]].concat()));
    let header = |column: PartnerSort| SortHeader {
        href: link(&search(column)),
        aria: match (column == sort, column) {
            (false, _) => "none",
            (true, PartnerSort::Refreshed | PartnerSort::Used) => "descending",
            (true, _) => "ascending",
        },
    };
    Ok(render(&PartnersPage {
        frame: staff.frame("partners"),
        q: q.to_owned(),
        statuses: STATUSES
            .into_iter()
            .map(|s| StatusOption {
                badge: StatusBadge::of(s),
                selected: Some(s) == status,
            })
            .collect(),
        sort: sort_value(sort),
        by_name: header(PartnerSort::Name),
        by_status: header(PartnerSort::Status),
        by_refreshed: header(PartnerSort::Refreshed),
        by_used: header(PartnerSort::Used),
        partners: rows.into_iter().map(PartnerLine::of).collect(),
        next,
        first,
        filtered: !q.is_empty() || status.is_some(),
        export: format!(
            "/admin/partners.csv?{}",
            serde_urlencoded::to_string(search(sort)).unwrap_or_default()
        ),
    })?
    .into_response())
}

struct GrantView {
    consented_by: String,
    consented_by_upn: String,
    consented_by_oid: String,
    consented_at: String,
    mfa_evidence: String,
    app_id: String,
    cloud: String,
    refreshed: String,
    used: String,
    last_error: String,
    last_error_advice: String,
}

struct AuditLine {
    at: String,
    actor: super::view::ActorView,
    action: String,
    details: Vec<super::view::DetailLine>,
}

/// One count of the partner's customers, linking to the customers page filtered by it.
struct CustomerTile {
    /// The customers page's `state` filter.
    filter: &'static str,
    label: &'static str,
    count: i64,
    /// Tile colour (a zero count is always calm).
    class: &'static str,
}

/// The partner's customer directory at a glance.
struct CustomersSummary {
    tiles: Vec<CustomerTile>,
    synced: Option<String>,
}

impl CustomersSummary {
    fn of(counts: &db::customers::CustomerCounts, synced: Option<String>) -> Self {
        let tile = |filter, label, count, class| CustomerTile {
            filter,
            label,
            count,
            class: if count == 0 { "neutral" } else { class },
        };
        Self {
            tiles: vec![
                tile("all", "Customers", counts.total, "info"),
                tile(
                    "needs_attention",
                    "Need attention",
                    counts.needs_attention,
                    "bad",
                ),
                tile("gdap_active", "GDAP active", counts.gdap_active, "ok"),
                tile("no_gdap", "No GDAP", counts.no_gdap, "bad"),
                tile(
                    "consent_missing",
                    "App consent missing",
                    counts.consent_missing,
                    "warn",
                ),
                tile(
                    "consent_stale",
                    "App consent stale",
                    counts.consent_stale,
                    "warn",
                ),
                tile(
                    "token_refused",
                    "Token refused",
                    counts.token_refused,
                    "bad",
                ),
            ],
            synced,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/partner.html")]
struct PartnerPage {
    frame: PageFrame,
    partner: PartnerLine,
    mpn_id: String,
    created: String,
    grant: Option<GrantView>,
    events: Vec<AuditLine>,
    offboarded: bool,
    customers: CustomersSummary,
}

/// The outcome of "refresh now" (audited, and said in the flash message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshOutcome {
    Ok,
    ConsentRequired,
    MfaRequired,
    Throttled,
    Unavailable,
    AppConfiguration,
    NoGrant,
}

impl RefreshOutcome {
    fn of(result: &Result<(), BrokerError>) -> Self {
        match result {
            Ok(()) => Self::Ok,
            Err(BrokerError::ConsentRequired(_)) => Self::ConsentRequired,
            Err(BrokerError::MfaRequired(_)) => Self::MfaRequired,
            Err(BrokerError::Throttled) => Self::Throttled,
            Err(BrokerError::AppConfiguration(_)) => Self::AppConfiguration,
            Err(BrokerError::NoGrant) => Self::NoGrant,
            Err(_) => Self::Unavailable,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ConsentRequired => "consent_required",
            Self::MfaRequired => "mfa_required",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::AppConfiguration => "app_configuration",
            Self::NoGrant => "no_grant",
        }
    }

    fn flash(self) -> Flash {
        match self {
            Self::Ok => Flash::success("Refreshed: Microsoft issued a new token for this partner."),
            Self::ConsentRequired => Flash::failure(
                "Refresh failed: the partner's consent is no longer valid. Create a re-consent invitation below.",
            ),
            Self::MfaRequired => Flash::failure(
                "Refresh failed: the partner's admin must sign in with MFA again. Create a re-consent invitation below.",
            ),
            Self::Throttled => {
                Flash::failure("Refresh failed: Microsoft is throttling. Try again in a minute.")
            }
            Self::Unavailable => Flash::failure(
                "Refresh failed: Microsoft could not be reached. This is usually temporary; try again in a few minutes.",
            ),
            Self::AppConfiguration => Flash::failure(
                "Refresh failed: Microsoft refused the CPV app's own credentials. Check the app's secret or certificate.",
            ),
            Self::NoGrant => Flash::failure(
                "Nothing to refresh: samgate holds no consent for this partner. Create a re-consent invitation below.",
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/invitation_created.html")]
pub(super) struct InvitationCreatedPage {
    pub frame: PageFrame,
    pub partner_name: String,
    pub link: String,
    pub expires: String,
    pub reconsent: bool,
    pub partner_id: Option<Uuid>,
}

fn partner_not_found() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Partner not found",
        "There is no partner at this address. Find it from the partners list.",
    )
}

/// `GET /admin/partners/{id}`: consent facts, status, audit trail, actions.
pub async fn show_partner(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let partner = find_partner(&state, &id).await?;
    let id = partner.id;
    let grant = db::grants::facts(&state.pool, id)
        .await
        .map_err(PageError::internal)?;
    let events = db::staff::search_audit(
        &state.pool,
        &db::staff::AuditFilter {
            partner_tenant_id: Some(partner.tenant_id),
            ..Default::default()
        },
        50,
    )
    .await
    .map_err(PageError::internal)?;
    let counts = db::customers::counts(&state.pool, id)
        .await
        .map_err(PageError::internal)?;
    let synced = db::customers::sync_state(&state.pool, id)
        .await
        .map_err(PageError::internal)?
        .and_then(|s| s.customers_synced_at)
        .map(when);
    let line = PartnerLine::of(PartnerRow {
        id: partner.id,
        tenant_id: partner.tenant_id,
        display_name: partner.display_name.clone(),
        domain: partner.domain.clone(),
        status: partner.status,
        status_reason: partner.status_reason.clone(),
        status_code: partner.status_code.clone(),
        status_changed_at: partner.status_changed_at,
        refreshed_at: grant.as_ref().map(|g| g.refreshed_at),
        last_used_at: grant.as_ref().and_then(|g| g.last_used_at),
    });
    Ok(render(&PartnerPage {
        frame: staff.frame("partners"),
        customers: CustomersSummary::of(&counts, synced),
        offboarded: partner.status == "offboarded",
        partner: line,
        mpn_id: partner.mpn_id.unwrap_or_default(),
        created: when(partner.created_at),
        grant: grant.map(|g| GrantView {
            consented_by: g.consented_by_name.unwrap_or_default(),
            consented_by_upn: g.consented_by_upn.unwrap_or_default(),
            consented_by_oid: g.consented_by_oid.to_string(),
            consented_at: when(g.consented_at),
            mfa_evidence: g.mfa_evidence,
            app_id: g.app_id.to_string(),
            cloud: g.cloud,
            refreshed: when(g.refreshed_at),
            used: when_or(g.last_used_at, "never"),
            last_error_advice: advice_for(g.last_error_code.as_deref())
                .unwrap_or_default()
                .to_owned(),
            last_error: match (g.last_error_code, g.last_error_at) {
                (Some(code), Some(at)) => format!("{code} at {}", when(at)),
                (Some(code), None) => code,
                _ => String::new(),
            },
        }),
        events: events
            .into_iter()
            .map(|e| AuditLine {
                at: when(e.occurred_at),
                actor: super::view::actor_view(
                    &e.actor,
                    e.actor_name.as_deref(),
                    e.partner_id.zip(e.partner_name.as_deref()),
                ),
                action: e.action,
                details: super::view::detail_lines(&e.details),
            })
            .collect(),
    })?
    .into_response())
}

/// `POST /admin/partners/{id}/invitations`: a re-consent invitation bound to the partner's
/// tenant; the link is shown once.
pub async fn invite_partner_again(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let partner = find_partner(&state, &id).await?;
    let (invitation, token) = onboarding::create_reconsent_invitation(
        &state.pool,
        partner.id,
        &staff.actor(),
        state.config.invitation_ttl,
        state.clock.now(),
    )
    .await
    .map_err(PageError::internal)?
    .ok_or_else(partner_not_found)?;
    Ok(render(&InvitationCreatedPage {
        frame: staff.frame("partners"),
        partner_name: partner.display_name,
        link: consent_link(&state, &token),
        expires: when(invitation.expires_at),
        reconsent: true,
        partner_id: Some(partner.id),
    })?
    .into_response())
}

/// The partner a `/admin/partners/{id}/…` address names, or the page's 404 (an id that is not a
/// UUID is as unknown as one that matches no partner).
pub(super) async fn find_partner(
    state: &AppState,
    id: &str,
) -> Result<db::partners::Partner, PageError> {
    let id = Uuid::parse_str(id).map_err(|_| partner_not_found())?;
    db::partners::find(&state.pool, id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(partner_not_found)
}

/// `POST /admin/partners/{id}/refresh`: refreshes the grant now through the broker (which records
/// a consent-class failure on the partner), audits the request and its outcome, and shows it.
pub async fn refresh_partner(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let partner = find_partner(&state, &id).await?;
    let info = crate::partners::PartnerInfo {
        id: partner.id,
        tenant_id: partner.tenant_id,
        display_name: partner.display_name.clone(),
        status: partner.status,
        status_code: partner.status_code.clone(),
        status_reason: partner.status_reason.clone(),
    };
    let result = state.broker.refresh_grant(&info).await;
    let outcome = RefreshOutcome::of(&result);
    state.partners.invalidate(partner.tenant_id).await;
    db::audit::record(
        &state.pool,
        &staff.actor(),
        "grant.refresh_requested",
        Some(partner.tenant_id),
        serde_json::json!({ "outcome": outcome.as_str() }),
        state.clock.now(),
    )
    .await
    .map_err(PageError::internal)?;
    staff
        .redirect_with(&format!("/admin/partners/{}", partner.id), outcome.flash())
        .await
}

/// The offboarding form.
#[derive(Debug, Default, Deserialize)]
pub struct OffboardForm {
    #[serde(default)]
    remove_app_consents: String,
}

/// `POST /admin/partners/{id}/offboard` (admin): `lifecycle::offboard` (grant crypto-shredded,
/// invitations revoked, optionally app consents removed first; it writes the audit record).
pub async fn offboard_partner(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    form: Result<axum::Form<OffboardForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let partner = find_partner(&state, &id).await?;
    let remove = form.is_ok_and(|axum::Form(f)| f.remove_app_consents == "yes");
    use crate::lifecycle::OffboardError;
    let flash = match crate::lifecycle::offboard(&state, partner.tenant_id, &staff.actor(), remove)
        .await
    {
        Ok(_) => Flash::success(
            "Offboarded: the grant was destroyed and pending invitations revoked. To work with \
             this partner again, create an invitation.",
        ),
        Err(OffboardError::AlreadyOffboarded) => Flash::failure(
            "Nothing changed: this partner was already offboarded. To work with it again, create \
             an invitation.",
        ),
        Err(OffboardError::Token(_)) => Flash::failure(
            "Not offboarded: app consents cannot be removed without a working grant. Offboard \
             without removing them, or have the partner consent again first.",
        ),
        Err(OffboardError::PartnerCenter(_)) => Flash::failure(
            "Not offboarded: Partner Center failed while removing app consents. The grant was \
             kept; try again later, or offboard without removing them.",
        ),
        Err(OffboardError::NotFound) => return Err(partner_not_found()),
        Err(err @ OffboardError::Database(_)) => return Err(PageError::internal(err)),
    };
    state.partners.invalidate(partner.tenant_id).await;
    staff
        .redirect_with(&format!("/admin/partners/{}", partner.id), flash)
        .await
}
