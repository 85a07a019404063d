//! The customer directory: each partner's customers (Partner Center `/v1/customers`, every page)
//! and GDAP relationships (Graph, partner tenant), stored in `customers` and read again on a
//! schedule, on demand, and when the proxy meets an unknown customer id (at most once per partner
//! per `SAMGATE_CUSTOMER_UNKNOWN_RESYNC_SECS`). The proxy's gate reads an in-memory copy per
//! partner, so a call costs no database statement in the steady state. Changes of a customer's
//! facts go through `health::customer`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::App;
use crate::broker::{BrokerError, Resource, TokenKey};
use crate::db;
use crate::db::customers::{CustomerGate, DirectoryFacts, Listed};
use crate::domain::Actor;
use crate::domain::CustomerRelationship;
use crate::graph::{DelegatedAdminRelationship, GraphError};
use crate::health;
use crate::partner_center::PartnerCenterError;
use crate::partners::PartnerInfo;

/// Customers per Partner Center page during a sync (Partner Center's maximum is 500).
const PAGE_SIZE: u32 = 500;
/// Rows written per transaction during a sync.
const BATCH: i64 = 500;
/// A sync that shows no sign of finishing within this long loses its lease.
const LEASE: time::Duration = time::Duration::minutes(10);
/// How long the proxy trusts its in-memory copy of a partner's customers.
const GATE_TTL: Duration = Duration::from_secs(60);

/// Why a sync did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another sync of this partner is running (here or on another instance).
    #[error("a sync of this partner's customers is already running")]
    Busy,
    /// No token for the partner.
    #[error("no Partner Center token: {0}")]
    Token(#[from] BrokerError),
    /// Partner Center failed.
    #[error(transparent)]
    PartnerCenter(#[from] PartnerCenterError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a complete sync found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// Customers Partner Center listed.
    pub listed: usize,
    /// Customers seen for the first time.
    pub added: usize,
    /// Customers no longer seen.
    pub removed: usize,
    /// Known customers whose facts changed (each announced).
    pub changed: usize,
    /// GDAP relationships read (false: Graph refused; relationships unknown).
    pub gdap_readable: bool,
    /// Customers with at least one GDAP relationship.
    pub gdap_customers: usize,
}

/// The proxy's view of one partner's customers.
#[derive(Debug, Default)]
pub struct Gates {
    /// Whether the directory was ever synced completely.
    pub synced_at: Option<OffsetDateTime>,
    by_tenant: HashMap<Uuid, CustomerGate>,
}

impl Gates {
    /// The gate of one customer, if it is a current customer.
    pub fn get(&self, customer: Uuid) -> Option<&CustomerGate> {
        self.by_tenant.get(&customer)
    }
}

/// The in-memory side of the directory (per process).
#[derive(Clone)]
pub struct CustomerDirectory {
    gates: Cache<Uuid, Arc<Gates>>,
    /// One sync per partner per process at a time; the DB lease covers other instances.
    running: Cache<Uuid, Arc<tokio::sync::Mutex<()>>>,
    /// When this process last synced a partner because of an unknown customer id.
    on_demand: Cache<Uuid, OffsetDateTime>,
    /// Database loads of partners' gates (tests and metrics: the steady state costs none).
    loads: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for CustomerDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerDirectory")
            .field("partners_cached", &self.gates.entry_count())
            .finish()
    }
}

impl Default for CustomerDirectory {
    fn default() -> Self {
        Self {
            gates: Cache::builder()
                // Weighed by customers, so a few huge partners cannot crowd memory.
                .weigher(|_, gates: &Arc<Gates>| {
                    u32::try_from(gates.by_tenant.len())
                        .unwrap_or(u32::MAX)
                        .max(1)
                })
                .max_capacity(2_000_000)
                .time_to_live(GATE_TTL)
                .build(),
            running: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            on_demand: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            loads: Arc::default(),
        }
    }
}

impl CustomerDirectory {
    /// Forgets the in-memory copy of a partner's customers.
    pub async fn invalidate(&self, partner_id: Uuid) {
        self.gates.invalidate(&partner_id).await;
    }

    /// Forgets every in-memory copy (tests and operators changing rows by hand).
    pub async fn invalidate_all(&self) {
        self.gates.invalidate_all();
        self.gates.run_pending_tasks().await;
    }

    /// How many times a partner's customers were loaded from the database.
    pub fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn gates(&self, app: &App, partner_id: Uuid) -> Result<Arc<Gates>, Arc<sqlx::Error>> {
        let pool = app.pool.clone();
        let loads = self.loads.clone();
        self.gates
            .try_get_with(partner_id, async move {
                loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("samgate_customer_gate_loads_total").increment(1);
                let state = db::customers::sync_state(&pool, partner_id).await?;
                let rows = db::customers::gates(&pool, partner_id).await?;
                Ok::<_, sqlx::Error>(Arc::new(Gates {
                    synced_at: state.and_then(|s| s.customers_synced_at),
                    by_tenant: rows.into_iter().map(|g| (g.tenant_id, g)).collect(),
                }))
            })
            .await
    }
}

/// The answer of the proxy's customer gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// A customer samgate may try to act in.
    Open(CustomerGate),
    /// A current customer without an active GDAP relationship.
    NoAccess(CustomerGate),
    /// Not a customer of this partner.
    Unknown,
}

/// Checks `customer` against `partner`'s directory before any token call: from memory, reading
/// the directory again when the customer is unknown and the directory is older than
/// `SAMGATE_CUSTOMER_UNKNOWN_RESYNC_SECS` (once per partner per that time in this process).
pub async fn gate(
    app: &App,
    partner: &PartnerInfo,
    customer: Uuid,
) -> Result<Gate, Arc<sqlx::Error>> {
    let directory = &app.customers;
    let gates = directory.gates(app, partner.id).await?;
    if let Some(found) = gates.get(customer) {
        return Ok(judge(found));
    }
    let now = app.clock.now();
    let window = app.config.customers.unknown_resync;
    let stale = gates.synced_at.is_none_or(|at| at < now - window);
    let recently_tried = directory
        .on_demand
        .get(&partner.id)
        .await
        .is_some_and(|at| at > now - window);
    if !stale || recently_tried {
        return Ok(Gate::Unknown);
    }
    directory.on_demand.insert(partner.id, now).await;
    match sync(app, partner, &Actor::Proxy).await {
        Ok(_) | Err(SyncError::Busy) => {}
        Err(err) => {
            tracing::warn!(partner.tenant_id = %partner.tenant_id, error = %err, "on-demand customer sync failed");
        }
    }
    let gates = directory.gates(app, partner.id).await?;
    Ok(gates.get(customer).map_or(Gate::Unknown, judge))
}

fn judge(gate: &CustomerGate) -> Gate {
    if gate.relationship.denies_access() {
        Gate::NoAccess(gate.clone())
    } else {
        Gate::Open(gate.clone())
    }
}

/// Reads the partner's customers and GDAP relationships completely and records what changed.
/// One sync per partner at a time across instances (a lease on the partner's row); a second
/// caller in this process waits for the running sync and returns `Busy`.
pub async fn sync(
    app: &App,
    partner: &PartnerInfo,
    actor: &Actor,
) -> Result<SyncReport, SyncError> {
    let lock = app
        .customers
        .running
        .get_with(partner.id, async { Arc::new(tokio::sync::Mutex::new(())) })
        .await;
    let Ok(_guard) = lock.try_lock() else {
        // Wait for the running sync so the caller sees its result, then say so.
        let _done = lock.lock().await;
        return Err(SyncError::Busy);
    };
    let now = truncate_to_micros(app.clock.now());
    if !db::customers::claim_sync(&app.pool, partner.id, now, now + LEASE).await? {
        return Err(SyncError::Busy);
    }
    let result = read_and_record(app, partner, now).await;
    let finished = app.clock.now();
    let (synced_at, error, readable) = match &result {
        Ok(report) => (Some(finished), None, Some(report.gdap_readable)),
        Err(err) => (None, Some(err.to_string()), None),
    };
    let mut tx = app.pool.begin().await?;
    db::customers::finish_sync(&mut *tx, partner.id, synced_at, error.as_deref(), readable).await?;
    if let Ok(report) = &result {
        db::audit::record(
            &mut *tx,
            actor,
            "customers.synced",
            Some(partner.tenant_id),
            serde_json::to_value(report).unwrap_or_default(),
            finished,
        )
        .await?;
    }
    tx.commit().await?;
    app.customers.invalidate(partner.id).await;
    result
}

fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    // PostgreSQL keeps microseconds; a sync compares stored `seen_at` with its own start.
    at.replace_nanosecond(at.nanosecond() / 1000 * 1000)
        .unwrap_or(at)
}

fn key(partner: &PartnerInfo, resource: Resource) -> TokenKey {
    TokenKey {
        partner_id: partner.id,
        partner_tenant: partner.tenant_id,
        authority_tenant: partner.tenant_id,
        resource,
    }
}

/// Aggregated GDAP facts of one customer.
#[derive(Debug, Default)]
struct Gdap {
    name: String,
    active: bool,
    roles: Vec<Uuid>,
    ends_at: Option<OffsetDateTime>,
}

impl Gdap {
    fn add(&mut self, rel: DelegatedAdminRelationship) {
        if self.name.is_empty() {
            self.name = rel.customer_name.clone();
        }
        let active = rel.is_active();
        if active && !self.active {
            // The first active relationship: earlier inactive ones no longer set the end.
            self.ends_at = None;
        }
        if active || !self.active {
            self.ends_at = match (self.ends_at, rel.ends_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        if active {
            self.active = true;
            for role in rel.roles {
                if !self.roles.contains(&role) {
                    self.roles.push(role);
                }
            }
        }
    }

    fn relationship(&self) -> CustomerRelationship {
        if self.active {
            CustomerRelationship::GdapActive
        } else {
            CustomerRelationship::GdapExpired
        }
    }
}

async fn read_and_record(
    app: &App,
    partner: &PartnerInfo,
    started: OffsetDateTime,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    // 1. Partner Center's list, page by page, recorded as it comes (memory stays one page).
    let mut next = None;
    loop {
        let token = app
            .broker
            .access_token(key(partner, Resource::PartnerCenter))
            .await?;
        let page = match app
            .partner_center
            .customers_page(&token.secret, PAGE_SIZE, next.as_ref())
            .await
        {
            Ok(page) => page,
            Err(err) => {
                if matches!(err, PartnerCenterError::TokenRejected { .. }) {
                    app.broker
                        .forget(key(partner, Resource::PartnerCenter))
                        .await;
                }
                return Err(err.into());
            }
        };
        let listed: Vec<Listed<'_>> = page
            .customers
            .iter()
            .map(|c| Listed {
                tenant_id: c.tenant_id,
                company_name: &c.company_name,
                domain: &c.domain,
            })
            .collect();
        let added = db::customers::upsert_listed(&app.pool, partner.id, &listed, started).await?;
        report.listed += listed.len();
        report.added += added.len();
        match page.next {
            Some(link) => next = Some(link),
            None => break,
        }
    }
    // 2. GDAP relationships from Graph (the partner's tenant), aggregated per customer.
    let gdap = read_gdap(app, partner).await;
    report.gdap_readable = gdap.is_some();
    let mut gdap = gdap.unwrap_or_default();
    report.gdap_customers = gdap.len();
    // 3. Every stored row, in keyset batches: decide its facts, record what changed.
    let now = app.clock.now();
    let readable = report.gdap_readable;
    let mut after = None;
    loop {
        let mut tx = app.pool.begin().await?;
        let rows = db::customers::batch_after(&mut *tx, partner.id, after, BATCH).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(last.tenant_id);
        let mut facts = Vec::with_capacity(rows.len());
        for row in &rows {
            let listed = row.listed && row.seen_at == started;
            let found = gdap.remove(&row.tenant_id);
            let relationship = match (&found, readable) {
                (Some(g), _) => g.relationship(),
                (None, true) => CustomerRelationship::None,
                (None, false) if row.relationship == CustomerRelationship::Unknown => {
                    CustomerRelationship::Listed
                }
                (None, false) => row.relationship,
            };
            let current = listed || found.is_some();
            let removed_at = if current {
                None
            } else {
                row.removed_at.or(Some(now))
            };
            if removed_at.is_some() && row.removed_at.is_none() {
                report.removed += 1;
            }
            let (roles, ends_at) = match &found {
                Some(g) => (g.roles.clone(), g.ends_at),
                None if readable => (Vec::new(), None),
                None => (row.gdap_roles.clone(), row.gdap_ends_at),
            };
            facts.push(DirectoryFacts {
                tenant_id: row.tenant_id,
                company_name: found.map(|g| g.name).unwrap_or_default(),
                listed,
                relationship,
                gdap_roles: roles,
                gdap_ends_at: ends_at,
                removed_at,
            });
        }
        report.changed += health::customer::record_directory(
            &mut tx,
            partner.id,
            partner.tenant_id,
            &rows,
            &facts,
            started,
            now,
        )
        .await?;
        tx.commit().await?;
    }
    // 4. Customers only GDAP knows (no reseller relationship in Partner Center).
    let only_gdap: Vec<DirectoryFacts> = gdap
        .into_iter()
        .map(|(tenant_id, g)| DirectoryFacts {
            tenant_id,
            relationship: g.relationship(),
            company_name: g.name,
            listed: false,
            gdap_roles: g.roles,
            gdap_ends_at: g.ends_at,
            removed_at: None,
        })
        .collect();
    for chunk in only_gdap.chunks(usize::try_from(BATCH).unwrap_or(500)) {
        let mut tx = app.pool.begin().await?;
        report.added += chunk.len();
        health::customer::record_directory(
            &mut tx,
            partner.id,
            partner.tenant_id,
            &[],
            chunk,
            started,
            now,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(report)
}

/// Reads every GDAP relationship of the partner; `None` when Graph does not let samgate read them
/// (missing permission or role) or fails, so the sync keeps what it knew.
async fn read_gdap(app: &App, partner: &PartnerInfo) -> Option<HashMap<Uuid, Gdap>> {
    let mut out: HashMap<Uuid, Gdap> = HashMap::new();
    let mut next = None;
    let mut retried = false;
    loop {
        let token = match app.broker.access_token(key(partner, Resource::Graph)).await {
            Ok(token) => token,
            Err(err) => {
                tracing::info!(partner.tenant_id = %partner.tenant_id, error = %err, "no Graph token: GDAP relationships unknown");
                return None;
            }
        };
        match app
            .graph
            .relationships_page(&token.secret, next.as_ref())
            .await
        {
            Ok(page) => {
                for rel in page.relationships {
                    out.entry(rel.customer_tenant_id).or_default().add(rel);
                }
                match page.next {
                    Some(link) => next = Some(link),
                    None => return Some(out),
                }
            }
            Err(GraphError::TokenRejected { .. }) if !retried => {
                // A cached token Graph no longer accepts: drop it, mint one, read the page again.
                app.broker.forget(key(partner, Resource::Graph)).await;
                retried = true;
            }
            Err(err @ GraphError::Forbidden { .. }) => {
                tracing::info!(partner.tenant_id = %partner.tenant_id, error = %err, "GDAP relationships not readable");
                return None;
            }
            Err(err) => {
                tracing::warn!(partner.tenant_id = %partner.tenant_id, error = %err, "reading GDAP relationships failed");
                return None;
            }
        }
    }
}

/// The scheduled sync: partners whose directory is older than `SAMGATE_CUSTOMER_SYNC_INTERVAL_SECS`,
/// a few at a time. Returns how many were synced.
pub async fn run_once(app: &App, now: OffsetDateTime) -> anyhow::Result<usize> {
    use futures_util::StreamExt;
    let settings = &app.config.customers;
    let due = db::customers::due_for_sync(&app.pool, now - settings.sync_interval, now, 50).await?;
    let synced = futures_util::stream::iter(due)
        .map(|partner_id| async move {
            let partner = db::partners::find(&app.pool, partner_id).await.ok().flatten()?;
            let info = app.partners.by_tenant(partner.tenant_id).await.ok().flatten()?;
            match sync(app, &info, &Actor::System).await {
                Ok(_) => Some(()),
                Err(err) => {
                    tracing::warn!(partner.tenant_id = %info.tenant_id, error = %err, "scheduled customer sync failed");
                    None
                }
            }
        })
        .buffer_unordered(settings.sync_concurrency)
        .filter_map(|done| async move { done })
        .count()
        .await;
    Ok(synced)
}
