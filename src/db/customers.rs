//! The `customers` table (the customer directory) and the directory bookkeeping on `partners`.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{ConsentState, CustomerRelationship, TokenOutcome};

/// One customer of one partner, with samgate's access facts.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct CustomerRow {
    /// The partner (samgate id).
    pub partner_id: Uuid,
    /// The customer's tenant.
    pub tenant_id: Uuid,
    /// Company name.
    pub company_name: String,
    /// Default domain.
    pub domain: String,
    /// Listed by Partner Center at the last complete sync.
    pub listed: bool,
    /// GDAP relationship state.
    pub relationship: CustomerRelationship,
    /// Roles of the active relationships.
    pub gdap_roles: Vec<Uuid>,
    /// When the latest relationship ends (or ended).
    pub gdap_ends_at: Option<OffsetDateTime>,
    /// The CPV app's consent.
    pub consent: ConsentState,
    /// The grants consented, canonical text.
    pub consent_grants: Option<String>,
    /// When the consent state last changed.
    pub consent_changed_at: Option<OffsetDateTime>,
    /// The last token outcome at the customer's authority.
    pub token_outcome: TokenOutcome,
    /// samgate's error code of a refusal.
    pub token_error: Option<String>,
    /// Microsoft's AADSTS code of a refusal.
    pub token_code: Option<String>,
    /// Advice for a person.
    pub token_advice: Option<String>,
    /// When the token outcome was last recorded.
    pub token_checked_at: Option<OffsetDateTime>,
    /// First seen.
    pub first_seen_at: OffsetDateTime,
    /// Last seen by a sync.
    pub seen_at: OffsetDateTime,
    /// No longer a customer (a complete sync did not see it).
    pub removed_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "partner_id, tenant_id, company_name, domain, listed, relationship, gdap_roles, \
     gdap_ends_at, consent, consent_grants, consent_changed_at, token_outcome, token_error, \
     token_code, token_advice, token_checked_at, first_seen_at, seen_at, removed_at";

/// One customer of one partner.
pub async fn find(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    tenant_id: Uuid,
) -> Result<Option<CustomerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers WHERE partner_id = $1 AND tenant_id = $2"
    ))
    .bind(partner_id)
    .bind(tenant_id)
    .fetch_optional(executor)
    .await
}

/// The rows of these customers, locked (a sync or a state change compares them and writes).
pub async fn lock_many(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    tenant_ids: &[Uuid],
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers WHERE partner_id = $1 AND tenant_id = ANY($2)
         ORDER BY tenant_id FOR UPDATE"
    ))
    .bind(partner_id)
    .bind(tenant_ids)
    .fetch_all(executor)
    .await
}

/// A batch of the partner's rows by tenant id after `after` (keyset), for walking every row.
pub async fn batch_after(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers WHERE partner_id = $1 AND ($2::uuid IS NULL OR tenant_id > $2)
         ORDER BY tenant_id LIMIT $3"
    ))
    .bind(partner_id)
    .bind(after)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// A customer as Partner Center lists it.
#[derive(Debug, Clone)]
pub struct Listed<'a> {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Company name.
    pub company_name: &'a str,
    /// Default domain.
    pub domain: &'a str,
}

/// Records a page of Partner Center's list: new customers are inserted (relationship unknown),
/// known ones get their name, `listed`, `seen_at` and lose `removed_at`. Returns the tenant ids
/// that were new.
pub async fn upsert_listed(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    page: &[Listed<'_>],
    seen_at: OffsetDateTime,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = page.iter().map(|c| c.tenant_id).collect();
    let names: Vec<&str> = page.iter().map(|c| c.company_name).collect();
    let domains: Vec<&str> = page.iter().map(|c| c.domain).collect();
    sqlx::query_scalar(
        "INSERT INTO customers (partner_id, tenant_id, company_name, domain, listed, first_seen_at, seen_at)
         SELECT $1, t.id, t.name, t.domain, true, $5, $5
           FROM unnest($2::uuid[], $3::text[], $4::text[]) AS t(id, name, domain)
         ON CONFLICT (partner_id, tenant_id) DO UPDATE
            SET company_name = EXCLUDED.company_name, domain = EXCLUDED.domain, listed = true,
                seen_at = EXCLUDED.seen_at, removed_at = NULL
         RETURNING CASE WHEN xmax = 0 THEN tenant_id END",
    )
    .bind(partner_id)
    .bind(&ids)
    .bind(&names)
    .bind(&domains)
    .bind(seen_at)
    .fetch_all(executor)
    .await
    .map(|rows: Vec<Option<Uuid>>| rows.into_iter().flatten().collect())
}

/// The directory facts of one row that a sync decides.
#[derive(Debug, Clone)]
pub struct DirectoryFacts {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Name (from Partner Center, or Graph when only GDAP knows the customer).
    pub company_name: String,
    /// Still listed by Partner Center.
    pub listed: bool,
    /// Relationship state.
    pub relationship: CustomerRelationship,
    /// Active roles.
    pub gdap_roles: Vec<Uuid>,
    /// End of the latest relationship.
    pub gdap_ends_at: Option<OffsetDateTime>,
    /// Set when the customer is gone.
    pub removed_at: Option<OffsetDateTime>,
}

/// Writes the directory facts of a batch of rows (inserting customers only GDAP knows).
pub async fn write_directory_facts(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    facts: &[DirectoryFacts],
    seen_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    if facts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = facts.iter().map(|f| f.tenant_id).collect();
    let names: Vec<&str> = facts.iter().map(|f| f.company_name.as_str()).collect();
    let listed: Vec<bool> = facts.iter().map(|f| f.listed).collect();
    let relationships: Vec<&str> = facts.iter().map(|f| f.relationship.as_str()).collect();
    // Arrays of arrays must be rectangular in PostgreSQL: roles travel as comma-joined text.
    let roles: Vec<String> = facts
        .iter()
        .map(|f| {
            f.gdap_roles
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let ends: Vec<Option<OffsetDateTime>> = facts.iter().map(|f| f.gdap_ends_at).collect();
    let removed: Vec<Option<OffsetDateTime>> = facts.iter().map(|f| f.removed_at).collect();
    sqlx::query(
        "INSERT INTO customers (partner_id, tenant_id, company_name, listed, relationship, gdap_roles,
                                gdap_ends_at, removed_at, first_seen_at, seen_at)
         SELECT $1, t.id, t.name, t.listed, t.relationship::customer_relationship,
                COALESCE(string_to_array(NULLIF(t.roles, ''), ',')::uuid[], '{}'), t.ends, t.removed, $9, $9
           FROM unnest($2::uuid[], $3::text[], $4::bool[], $5::text[], $6::text[], $7::timestamptz[],
                       $8::timestamptz[]) AS t(id, name, listed, relationship, roles, ends, removed)
         ON CONFLICT (partner_id, tenant_id) DO UPDATE
            SET listed = EXCLUDED.listed, relationship = EXCLUDED.relationship,
                gdap_roles = EXCLUDED.gdap_roles, gdap_ends_at = EXCLUDED.gdap_ends_at,
                removed_at = EXCLUDED.removed_at,
                company_name = CASE WHEN customers.company_name = '' THEN EXCLUDED.company_name
                                    ELSE customers.company_name END,
                seen_at = CASE WHEN EXCLUDED.removed_at IS NULL THEN $9 ELSE customers.seen_at END",
    )
    .bind(partner_id)
    .bind(&ids)
    .bind(&names)
    .bind(&listed)
    .bind(&relationships)
    .bind(&roles)
    .bind(&ends)
    .bind(&removed)
    .bind(seen_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// A token outcome at a customer's authority.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    /// Ok or refused.
    pub outcome: TokenOutcome,
    /// samgate's customer error code.
    pub error: Option<&'a str>,
    /// AADSTS code.
    pub code: Option<&'a str>,
    /// Advice.
    pub advice: Option<&'a str>,
}

/// Records a token outcome (creating the row if a token was asked for a customer samgate has
/// not listed yet).
pub async fn write_token_outcome(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    tenant_id: Uuid,
    facts: TokenFacts<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (partner_id, tenant_id, token_outcome, token_error, token_code,
                                token_advice, token_checked_at, first_seen_at, seen_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)
         ON CONFLICT (partner_id, tenant_id) DO UPDATE
            SET token_outcome = EXCLUDED.token_outcome, token_error = EXCLUDED.token_error,
                token_code = EXCLUDED.token_code, token_advice = EXCLUDED.token_advice,
                token_checked_at = EXCLUDED.token_checked_at",
    )
    .bind(partner_id)
    .bind(tenant_id)
    .bind(facts.outcome)
    .bind(facts.error)
    .bind(facts.code)
    .bind(facts.advice)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records the app consent state (creating the row if needed).
pub async fn write_consent(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    tenant_id: Uuid,
    consent: ConsentState,
    grants: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (partner_id, tenant_id, consent, consent_grants, consent_changed_at,
                                first_seen_at, seen_at)
         VALUES ($1, $2, $3, $4, $5, $5, $5)
         ON CONFLICT (partner_id, tenant_id) DO UPDATE
            SET consent = EXCLUDED.consent, consent_grants = EXCLUDED.consent_grants,
                consent_changed_at = EXCLUDED.consent_changed_at",
    )
    .bind(partner_id)
    .bind(tenant_id)
    .bind(consent)
    .bind(grants)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Rows whose consent state disagrees with the configured grants `expected` (granted with other
/// grants, or stale although they now match), locked, a batch at a time.
pub async fn lock_consent_mismatches(
    executor: impl PgExecutor<'_>,
    expected: &str,
    limit: i64,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers
          WHERE (consent = 'granted' AND consent_grants IS DISTINCT FROM $1)
             OR (consent = 'stale' AND consent_grants = $1)
          ORDER BY partner_id, tenant_id LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(expected)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// What the proxy needs of one customer, for the in-memory directory.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct CustomerGate {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Relationship state.
    pub relationship: CustomerRelationship,
    /// End of the latest relationship.
    pub gdap_ends_at: Option<OffsetDateTime>,
}

/// Every current (not removed) customer of a partner, as the proxy's gate needs them.
pub async fn gates(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<Vec<CustomerGate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, relationship, gdap_ends_at FROM customers
          WHERE partner_id = $1 AND removed_at IS NULL
            AND (listed OR relationship <> 'unknown')",
    )
    .bind(partner_id)
    .fetch_all(executor)
    .await
}

/// A filter of the customer list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomerFilter {
    /// Every current customer.
    All,
    /// Customers where something blocks access or must be fixed: no or expired GDAP, app consent
    /// missing or stale, or a refused token.
    NeedsAttention,
    /// Active GDAP relationship.
    GdapActive,
    /// No active GDAP relationship (none or expired).
    NoGdap,
    /// App consent missing.
    ConsentMissing,
    /// App consent stale.
    ConsentStale,
    /// Last token refused.
    TokenRefused,
    /// No longer customers.
    Removed,
}

impl CustomerFilter {
    fn sql(self) -> &'static str {
        match self {
            Self::All => "removed_at IS NULL",
            Self::NeedsAttention => {
                "removed_at IS NULL AND (relationship IN ('none', 'gdap_expired') OR consent <> 'granted' \
                 OR token_outcome = 'refused')"
            }
            Self::GdapActive => "removed_at IS NULL AND relationship = 'gdap_active'",
            Self::NoGdap => "removed_at IS NULL AND relationship IN ('none', 'gdap_expired')",
            Self::ConsentMissing => "removed_at IS NULL AND consent = 'none'",
            Self::ConsentStale => "removed_at IS NULL AND consent = 'stale'",
            Self::TokenRefused => "removed_at IS NULL AND token_outcome = 'refused'",
            Self::Removed => "removed_at IS NOT NULL",
        }
    }
}

/// A page of a partner's customers ordered by name then tenant id, after the keyset `after`,
/// optionally matching `search` (name, domain or tenant id, case-insensitive).
pub async fn list(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    filter: CustomerFilter,
    search: Option<&str>,
    after: Option<(&str, Uuid)>,
    limit: i64,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    let pattern = search.map(str::trim).filter(|s| !s.is_empty()).map(|s| {
        format!(
            "%{}%",
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers
          WHERE partner_id = $1 AND ({filter})
            AND ($2::text IS NULL OR company_name ILIKE $2 OR domain ILIKE $2 OR tenant_id::text ILIKE $2)
            AND ($3::text IS NULL OR (company_name, tenant_id) > ($3, $4))
          ORDER BY company_name, tenant_id LIMIT $5",
        filter = filter.sql()
    ))
    .bind(partner_id)
    .bind(pattern)
    .bind(after.map(|(name, _)| name))
    .bind(after.map(|(_, id)| id).unwrap_or_default())
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Counts of a partner's current customers by fact, for the partner page and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct CustomerCounts {
    /// Current customers.
    pub total: i64,
    /// With an active GDAP relationship.
    pub gdap_active: i64,
    /// With no or an expired relationship.
    pub no_gdap: i64,
    /// GDAP not known.
    pub gdap_unknown: i64,
    /// App consent granted with the current scopes.
    pub consent_granted: i64,
    /// App consent stale.
    pub consent_stale: i64,
    /// App consent missing.
    pub consent_missing: i64,
    /// Last token refused.
    pub token_refused: i64,
    /// Needing attention.
    pub needs_attention: i64,
}

/// Counts of the partner's current customers.
pub async fn counts(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<CustomerCounts, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT count(*) AS total,
                count(*) FILTER (WHERE relationship = 'gdap_active') AS gdap_active,
                count(*) FILTER (WHERE relationship IN ('none', 'gdap_expired')) AS no_gdap,
                count(*) FILTER (WHERE relationship IN ('unknown', 'listed')) AS gdap_unknown,
                count(*) FILTER (WHERE consent = 'granted') AS consent_granted,
                count(*) FILTER (WHERE consent = 'stale') AS consent_stale,
                count(*) FILTER (WHERE consent = 'none') AS consent_missing,
                count(*) FILTER (WHERE token_outcome = 'refused') AS token_refused,
                count(*) FILTER (WHERE {attention}) AS needs_attention
           FROM customers WHERE partner_id = $1 AND removed_at IS NULL",
        attention = CustomerFilter::NeedsAttention.sql()
    ))
    .bind(partner_id)
    .fetch_one(executor)
    .await
}

/// The directory bookkeeping of a partner.
#[derive(Debug, Clone, FromRow)]
pub struct SyncState {
    /// Last complete sync.
    pub customers_synced_at: Option<OffsetDateTime>,
    /// Why the last sync failed.
    pub customers_sync_error: Option<String>,
    /// Whether Graph let samgate read the GDAP relationships at the last sync.
    pub customers_gdap_readable: Option<bool>,
    /// A sync holds the lease until then.
    pub customers_sync_lease_until: Option<OffsetDateTime>,
}

/// The directory bookkeeping of a partner.
pub async fn sync_state(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<Option<SyncState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT customers_synced_at, customers_sync_error, customers_gdap_readable,
                customers_sync_lease_until
           FROM partners WHERE id = $1",
    )
    .bind(partner_id)
    .fetch_optional(executor)
    .await
}

/// Takes the partner's sync lease until `until` unless another sync holds it. True when taken.
pub async fn claim_sync(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE partners SET customers_sync_lease_until = $3
          WHERE id = $1 AND (customers_sync_lease_until IS NULL OR customers_sync_lease_until < $2)",
    )
    .bind(partner_id)
    .bind(now)
    .bind(until)
    .execute(executor)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Ends a sync: records its outcome and frees the lease.
pub async fn finish_sync(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    synced_at: Option<OffsetDateTime>,
    error: Option<&str>,
    gdap_readable: Option<bool>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE partners SET customers_sync_lease_until = NULL,
                customers_synced_at = COALESCE($2, customers_synced_at),
                customers_sync_error = $3,
                customers_gdap_readable = COALESCE($4, customers_gdap_readable)
          WHERE id = $1",
    )
    .bind(partner_id)
    .bind(synced_at)
    .bind(error)
    .bind(gdap_readable)
    .execute(executor)
    .await?;
    Ok(())
}

/// Consented partners whose directory was not synced since `before`, oldest first.
pub async fn due_for_sync(
    executor: impl PgExecutor<'_>,
    before: OffsetDateTime,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT p.id FROM partners p JOIN grants g ON g.partner_id = p.id
          WHERE p.status IN ('healthy', 'degraded')
            AND (p.customers_synced_at IS NULL OR p.customers_synced_at < $1)
            AND (p.customers_sync_lease_until IS NULL OR p.customers_sync_lease_until < $2)
          ORDER BY p.customers_synced_at NULLS FIRST LIMIT $3",
    )
    .bind(before)
    .bind(now)
    .bind(limit)
    .fetch_all(executor)
    .await
}
