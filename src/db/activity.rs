//! Read models of proxy activity (`proxy_calls`): counts by status class per time bucket, latency
//! percentiles, the call log with keyset pages, and token refresh outcomes (`audit_events`,
//! `grants`). Each scope has its own fixed predicate so PostgreSQL plans it on its own index.

use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

/// Whose calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every call.
    Estate,
    /// Calls for one partner tenant.
    Partner(Uuid),
    /// Calls by one API client.
    Client(Uuid),
}

impl Scope {
    fn push_predicate(self, query: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Self::Estate => {
                query.push(" TRUE");
            }
            Self::Partner(tenant) => {
                query.push(" partner_tenant_id = ").push_bind(tenant);
            }
            Self::Client(client) => {
                query.push(" client_id = ").push_bind(client);
            }
        }
    }
}

const COUNTS: &str = "count(*) AS calls, \
     count(*) FILTER (WHERE status BETWEEN 400 AND 499 AND status <> 429) AS client_errors, \
     count(*) FILTER (WHERE status = 429) AS throttled, \
     count(*) FILTER (WHERE status >= 500) AS server_errors, \
     count(*) FILTER (WHERE error_code IS NOT NULL) AS samgate_errors";

/// Calls of one time bucket by outcome (`throttled` is 429, not counted in `client_errors`).
#[derive(Debug, Clone, FromRow)]
pub struct BucketRow {
    /// Bucket start.
    pub bucket: OffsetDateTime,
    /// Every call.
    pub calls: i64,
    /// 4xx other than 429.
    pub client_errors: i64,
    /// 429.
    pub throttled: i64,
    /// 5xx.
    pub server_errors: i64,
    /// Answered by samgate itself with one of its error codes.
    pub samgate_errors: i64,
}

impl BucketRow {
    /// A bucket without calls.
    pub fn empty(bucket: OffsetDateTime) -> Self {
        Self {
            bucket,
            calls: 0,
            client_errors: 0,
            throttled: 0,
            server_errors: 0,
            samgate_errors: 0,
        }
    }
}

/// Counts per bucket of `step_seconds` from `since` (buckets without calls are absent).
pub async fn buckets(
    executor: impl PgExecutor<'_>,
    scope: Scope,
    since: OffsetDateTime,
    until: OffsetDateTime,
    step_seconds: i64,
) -> Result<Vec<BucketRow>, sqlx::Error> {
    let mut query = QueryBuilder::new("SELECT date_bin(make_interval(secs => ");
    query
        .push_bind(step_seconds as f64)
        .push("), occurred_at, ")
        .push_bind(since)
        .push(") AS bucket, ")
        .push(COUNTS)
        .push(" FROM proxy_calls WHERE");
    scope.push_predicate(&mut query);
    query
        .push(" AND occurred_at >= ")
        .push_bind(since)
        .push(" AND occurred_at < ")
        .push_bind(until)
        .push(" GROUP BY 1 ORDER BY 1");
    query.build_query_as().fetch_all(executor).await
}

/// Totals and latency percentiles of a time range.
#[derive(Debug, Clone, Default, FromRow)]
pub struct SummaryRow {
    /// Every call.
    pub calls: i64,
    /// 4xx other than 429.
    pub client_errors: i64,
    /// 429.
    pub throttled: i64,
    /// 5xx.
    pub server_errors: i64,
    /// samgate error codes.
    pub samgate_errors: i64,
    /// Median time to response headers.
    pub p50_ms: Option<i32>,
    /// 95th percentile.
    pub p95_ms: Option<i32>,
}

/// Totals and p50/p95 latency of the calls in `[since, until)`.
pub async fn summary(
    executor: impl PgExecutor<'_>,
    scope: Scope,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<SummaryRow, sqlx::Error> {
    let mut query = QueryBuilder::new("SELECT ");
    query.push(COUNTS).push(
        ", percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms, \
         percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms \
         FROM proxy_calls WHERE",
    );
    scope.push_predicate(&mut query);
    query
        .push(" AND occurred_at >= ")
        .push_bind(since)
        .push(" AND occurred_at < ")
        .push_bind(until);
    query.build_query_as().fetch_one(executor).await
}

/// samgate's error codes in `[since, until)`, most frequent first.
pub async fn error_codes(
    executor: impl PgExecutor<'_>,
    scope: Scope,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut query = QueryBuilder::new("SELECT error_code, count(*) FROM proxy_calls WHERE");
    scope.push_predicate(&mut query);
    query
        .push(" AND occurred_at >= ")
        .push_bind(since)
        .push(" AND occurred_at < ")
        .push_bind(until)
        .push(" AND error_code IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20");
    query.build_query_as().fetch_all(executor).await
}

/// Token refresh outcomes since a time, from the grants and the audit log.
#[derive(Debug, Clone, Default, FromRow)]
pub struct RefreshRow {
    /// Grants whose last successful refresh is in the range.
    pub refreshed: i64,
    /// `grant.refresh_failed` (consent or MFA needed, or transient failures announced).
    pub failed: i64,
    /// `partner.degraded`.
    pub degraded: i64,
    /// `partner.recovered`.
    pub recovered: i64,
    /// Grants counting transient failures right now.
    pub failing_now: i64,
}

/// Refresh outcomes since `since`, for every partner or one partner tenant.
pub async fn refresh_outcomes(
    executor: impl PgExecutor<'_>,
    partner_tenant_id: Option<Uuid>,
    since: OffsetDateTime,
) -> Result<RefreshRow, sqlx::Error> {
    sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM grants g JOIN partners p ON p.id = g.partner_id
             WHERE g.refreshed_at >= $2 AND ($1::uuid IS NULL OR p.tenant_id = $1)) AS refreshed,
           count(*) FILTER (WHERE a.action = 'grant.refresh_failed') AS failed,
           count(*) FILTER (WHERE a.action = 'partner.degraded') AS degraded,
           count(*) FILTER (WHERE a.action = 'partner.recovered') AS recovered,
           (SELECT count(*) FROM grants g JOIN partners p ON p.id = g.partner_id
             WHERE g.refresh_failures > 0 AND ($1::uuid IS NULL OR p.tenant_id = $1)) AS failing_now
         FROM audit_events a
         WHERE a.occurred_at >= $2
           AND a.action IN ('grant.refresh_failed', 'partner.degraded', 'partner.recovered')
           AND ($1::uuid IS NULL OR a.partner_tenant_id = $1)",
    )
    .bind(partner_tenant_id)
    .bind(since)
    .fetch_one(executor)
    .await
}

/// Which status codes a call log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 1xx–3xx.
    Success,
    /// 4xx other than 429.
    ClientError,
    /// 429.
    Throttled,
    /// 5xx.
    ServerError,
    /// Answered by samgate with an error code.
    Samgate,
}

/// What a call log is filtered by.
#[derive(Debug, Clone, Default)]
pub struct CallFilter<'a> {
    /// Status class.
    pub class: Option<StatusClass>,
    /// Customer tenant.
    pub customer_tenant_id: Option<Uuid>,
    /// Exact route template.
    pub route: Option<&'a str>,
    /// At or after.
    pub from: Option<OffsetDateTime>,
    /// Before.
    pub until: Option<OffsetDateTime>,
    /// Calls after this one in the page order (the keyset).
    pub before: Option<i64>,
}

/// One proxied call.
#[derive(Debug, Clone, FromRow)]
pub struct CallRow {
    /// Sequence (the keyset).
    pub id: i64,
    /// When.
    pub occurred_at: OffsetDateTime,
    /// API client.
    pub client_id: Option<Uuid>,
    /// Its name.
    pub client_name: Option<String>,
    /// Partner tenant.
    pub partner_tenant_id: Uuid,
    /// Customer tenant.
    pub customer_tenant_id: Option<Uuid>,
    /// `partner-center` or `graph`.
    pub upstream: String,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Status returned.
    pub status: i32,
    /// Time to response headers.
    pub latency_ms: i32,
    /// `MS-CorrelationId`.
    pub correlation_id: Option<String>,
    /// samgate's error code.
    pub error_code: Option<String>,
}

/// One page of calls, newest first; `before` is the id of the last call of the previous page.
pub async fn calls(
    executor: impl PgExecutor<'_>,
    scope: Scope,
    filter: &CallFilter<'_>,
    limit: i64,
) -> Result<Vec<CallRow>, sqlx::Error> {
    let mut query = QueryBuilder::new(
        "SELECT c.id, c.occurred_at, c.client_id, k.name AS client_name, c.partner_tenant_id, \
         c.customer_tenant_id, c.upstream, c.method, c.route, c.status, c.latency_ms, \
         c.correlation_id, c.error_code \
         FROM proxy_calls c LEFT JOIN api_clients k ON k.id = c.client_id WHERE",
    );
    scope.push_predicate(&mut query);
    match filter.class {
        None => {}
        Some(StatusClass::Success) => {
            query.push(" AND c.status < 400");
        }
        Some(StatusClass::ClientError) => {
            query.push(" AND c.status BETWEEN 400 AND 499 AND c.status <> 429");
        }
        Some(StatusClass::Throttled) => {
            query.push(" AND c.status = 429");
        }
        Some(StatusClass::ServerError) => {
            query.push(" AND c.status >= 500");
        }
        Some(StatusClass::Samgate) => {
            query.push(" AND c.error_code IS NOT NULL");
        }
    }
    if let Some(customer) = filter.customer_tenant_id {
        query
            .push(" AND c.customer_tenant_id = ")
            .push_bind(customer);
    }
    if let Some(route) = filter.route {
        query.push(" AND c.route = ").push_bind(route);
    }
    if let Some(from) = filter.from {
        query.push(" AND c.occurred_at >= ").push_bind(from);
    }
    if let Some(until) = filter.until {
        query.push(" AND c.occurred_at < ").push_bind(until);
    }
    if let Some(before) = filter.before {
        query
            .push(" AND (c.occurred_at, c.id) < (SELECT b.occurred_at, b.id FROM proxy_calls b WHERE b.id = ")
            .push_bind(before)
            .push(")");
    }
    // Newest first by time, so the scope's (…, occurred_at) index serves the page; the id breaks
    // ties and is the cursor.
    query
        .push(" ORDER BY c.occurred_at DESC, c.id DESC LIMIT ")
        .push_bind(limit);
    query.build_query_as().fetch_all(executor).await
}

/// A partner or client and its calls in a range.
#[derive(Debug, Clone, FromRow)]
pub struct BusiestRow {
    /// samgate's id of the partner or client (absent when it no longer exists).
    pub id: Option<Uuid>,
    /// Its name (absent when it no longer exists).
    pub name: Option<String>,
    /// The partner tenant or client id the calls carry.
    pub key: Option<Uuid>,
    /// Calls.
    pub calls: i64,
    /// 4xx, 429 and 5xx together.
    pub errors: i64,
}

/// The partners with the most calls in `[since, until)`.
pub async fn busiest_partners(
    executor: impl PgExecutor<'_>,
    since: OffsetDateTime,
    until: OffsetDateTime,
    limit: i64,
) -> Result<Vec<BusiestRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, p.display_name AS name, c.key, c.calls, c.errors FROM (
           SELECT partner_tenant_id AS key, count(*) AS calls,
                  count(*) FILTER (WHERE status >= 400) AS errors
           FROM proxy_calls WHERE occurred_at >= $1 AND occurred_at < $2
           GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3) c
         LEFT JOIN partners p ON p.tenant_id = c.key ORDER BY c.calls DESC, c.key",
    )
    .bind(since)
    .bind(until)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// The API clients with the most calls in `[since, until)`.
pub async fn busiest_clients(
    executor: impl PgExecutor<'_>,
    since: OffsetDateTime,
    until: OffsetDateTime,
    limit: i64,
) -> Result<Vec<BusiestRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.id, k.name, c.key, c.calls, c.errors FROM (
           SELECT client_id AS key, count(*) AS calls,
                  count(*) FILTER (WHERE status >= 400) AS errors
           FROM proxy_calls WHERE occurred_at >= $1 AND occurred_at < $2 AND client_id IS NOT NULL
           GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3) c
         LEFT JOIN api_clients k ON k.id = c.key ORDER BY c.calls DESC, c.key",
    )
    .bind(since)
    .bind(until)
    .bind(limit)
    .fetch_all(executor)
    .await
}
