//! Read models of proxy activity: counts by status class per time bucket and latency percentiles
//! from `proxy_calls`, or from its hourly rollup `proxy_call_hours` (kept by housekeeping) plus the
//! calls after it; the call log with keyset pages; token refresh outcomes (`audit_events`,
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

/// Upper bounds (inclusive, ms) of the latency histogram of `proxy_call_hours`; one more bucket
/// holds slower calls.
pub const LATENCY_BOUNDS_MS: [i32; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// The histogram's buckets over `proxy_calls.latency_ms`, comma-separated: counts of rows when
/// `aggregate`, else a row's 0 or 1 per bucket.
fn latency_buckets(aggregate: bool) -> String {
    let mut lower: Option<i32> = None;
    let mut parts = Vec::new();
    for bound in LATENCY_BOUNDS_MS.iter().map(|b| Some(*b)).chain([None]) {
        let condition = match (lower, bound) {
            (None, Some(b)) => format!("latency_ms <= {b}"),
            (Some(l), Some(b)) => format!("latency_ms > {l} AND latency_ms <= {b}"),
            (Some(l), None) => format!("latency_ms > {l}"),
            (None, None) => "TRUE".to_owned(),
        };
        parts.push(if aggregate {
            format!("count(*) FILTER (WHERE {condition})")
        } else {
            format!("({condition})::int::int8")
        });
        lower = bound;
    }
    parts.join(", ")
}

/// Rolls complete hours of `proxy_calls` up into `proxy_call_hours`, from two hours before the
/// last roll-up (calls written late land there) or from `oldest`, up to the hour holding `now`.
/// Idempotent; concurrent runs wait for each other. Returns the hours written.
pub async fn roll_up_hours(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    oldest: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let until = floor_hour(now);
    let oldest = floor_hour(oldest);
    sqlx::query(
        "INSERT INTO proxy_call_rollup (rolled_until) VALUES ($1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(oldest)
    .execute(&mut *conn)
    .await?;
    let rolled: OffsetDateTime =
        sqlx::query_scalar("SELECT rolled_until FROM proxy_call_rollup FOR UPDATE")
            .fetch_one(&mut *conn)
            .await?;
    let from = (rolled - time::Duration::hours(2)).max(oldest);
    if from >= until {
        return Ok(0);
    }
    sqlx::query("DELETE FROM proxy_call_hours WHERE hour >= $1 AND hour < $2")
        .bind(from)
        .bind(until)
        .execute(&mut *conn)
        .await?;
    // Two sets of rows: per partner (over all clients; client_id nil) and per client (over all
    // partners; partner_tenant_id nil), so the rollup stays small however many pairs call.
    // A call without an API client has no per-client row: nil in both keys would read as a
    // per-partner row and count the call twice in the estate's totals.
    let mut written = 0;
    for (partner, client, only) in [
        ("partner_tenant_id", NIL, ""),
        (NIL, "client_id", " AND client_id IS NOT NULL"),
    ] {
        let done = sqlx::query(&format!(
            "INSERT INTO proxy_call_hours (hour, partner_tenant_id, client_id, calls, client_errors, \
             throttled, server_errors, samgate_errors, latency_counts) \
             SELECT date_trunc('hour', occurred_at), {partner}, {client}, {COUNTS_BARE}, \
             ARRAY[{histogram}] FROM proxy_calls WHERE occurred_at >= $1 AND occurred_at < $2{only} \
             GROUP BY 1, 2, 3",
            histogram = latency_buckets(true),
        ))
        .bind(from)
        .bind(until)
        .execute(&mut *conn)
        .await?;
        written += done.rows_affected();
    }
    sqlx::query("UPDATE proxy_call_rollup SET rolled_until = GREATEST(rolled_until, $1)")
        .bind(until)
        .execute(&mut *conn)
        .await?;
    Ok(written)
}

const NIL: &str = "'00000000-0000-0000-0000-000000000000'::uuid";

/// Deletes rolled-up hours before `before`.
pub async fn prune_hours(
    executor: impl PgExecutor<'_>,
    before: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM proxy_call_hours WHERE hour < $1")
        .bind(before)
        .execute(executor)
        .await?;
    Ok(done.rows_affected())
}

/// The end of the rolled-up hours, if any were rolled up.
pub async fn rolled_until(
    executor: impl PgExecutor<'_>,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    sqlx::query_scalar("SELECT rolled_until FROM proxy_call_rollup")
        .fetch_optional(executor)
        .await
}

fn floor_hour(at: OffsetDateTime) -> OffsetDateTime {
    let s = at.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(s - s.rem_euclid(3600)).unwrap_or(at)
}

const COUNTS_BARE: &str = "count(*), \
     count(*) FILTER (WHERE status BETWEEN 400 AND 499 AND status <> 429), \
     count(*) FILTER (WHERE status = 429), \
     count(*) FILTER (WHERE status >= 500), \
     count(*) FILTER (WHERE error_code IS NOT NULL)";

/// Pushes `SELECT t, calls, …, l1, … FROM (rolled-up hours in [since, split) UNION ALL calls in
/// [split, until))` as a derived table `x` (columns `t`, counts, `l1`…`l11`).
fn push_merged(
    query: &mut QueryBuilder<'_, Postgres>,
    scope: Scope,
    by_client: bool,
    since: OffsetDateTime,
    split: OffsetDateTime,
    until: OffsetDateTime,
) {
    let slots = LATENCY_BOUNDS_MS.len() + 1;
    let rolled: Vec<String> = (1..=slots)
        .map(|i| format!("latency_counts[{i}] AS l{i}"))
        .collect();
    query.push(format!(
        " (SELECT hour AS t, partner_tenant_id AS partner_key, client_id AS client_key, calls, \
         client_errors, throttled, server_errors, samgate_errors, {} FROM proxy_call_hours WHERE",
        rolled.join(", ")
    ));
    scope.push_predicate(query);
    query
        .push(if by_client {
            format!(" AND partner_tenant_id = {NIL}")
        } else {
            format!(" AND client_id = {NIL}")
        })
        .push(" AND hour >= ")
        .push_bind(since)
        .push(" AND hour < ")
        .push_bind(split)
        .push(format!(
            " UNION ALL SELECT occurred_at, partner_tenant_id, \
             COALESCE(client_id, '00000000-0000-0000-0000-000000000000'::uuid), 1::int8, \
             (status BETWEEN 400 AND 499 AND status <> 429)::int::int8, (status = 429)::int::int8, \
             (status >= 500)::int::int8, (error_code IS NOT NULL)::int::int8, {} FROM proxy_calls WHERE",
            latency_buckets(false)
        ));
    scope.push_predicate(query);
    query
        .push(" AND occurred_at >= ")
        .push_bind(split)
        .push(" AND occurred_at < ")
        .push_bind(until)
        .push(") x");
}

const SUMS: &str = "sum(calls)::int8 AS calls, sum(client_errors)::int8 AS client_errors, \
     sum(throttled)::int8 AS throttled, sum(server_errors)::int8 AS server_errors, \
     sum(samgate_errors)::int8 AS samgate_errors";

/// Like [`buckets`], with whole hours before `split` read from the rollup.
pub async fn rolled_buckets(
    executor: impl PgExecutor<'_>,
    scope: Scope,
    since: OffsetDateTime,
    split: OffsetDateTime,
    until: OffsetDateTime,
    step_seconds: i64,
) -> Result<Vec<BucketRow>, sqlx::Error> {
    let mut query = QueryBuilder::new("SELECT date_bin(make_interval(secs => ");
    query
        .push_bind(step_seconds as f64)
        .push("), t, ")
        .push_bind(since)
        .push(") AS bucket, ")
        .push(SUMS)
        .push(" FROM");
    let by_client = matches!(scope, Scope::Client(_));
    push_merged(&mut query, scope, by_client, since, split, until);
    query.push(" GROUP BY 1 ORDER BY 1");
    query.build_query_as().fetch_all(executor).await
}

/// Totals of a range with its latency histogram (per [`LATENCY_BOUNDS_MS`] bucket).
#[derive(Debug, Clone, FromRow)]
pub struct RolledSummaryRow {
    /// Every call.
    pub calls: Option<i64>,
    /// 4xx other than 429.
    pub client_errors: Option<i64>,
    /// 429.
    pub throttled: Option<i64>,
    /// 5xx.
    pub server_errors: Option<i64>,
    /// samgate error codes.
    pub samgate_errors: Option<i64>,
    /// Calls per latency bucket.
    pub latency_counts: Vec<Option<i64>>,
}

/// Like [`summary`], with whole hours before `split` read from the rollup and the latency as a
/// histogram.
pub async fn rolled_summary(
    executor: impl PgExecutor<'_>,
    scope: Scope,
    since: OffsetDateTime,
    split: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<RolledSummaryRow, sqlx::Error> {
    let slots: Vec<String> = (1..=LATENCY_BOUNDS_MS.len() + 1)
        .map(|i| format!("sum(l{i})::int8"))
        .collect();
    let mut query = QueryBuilder::new("SELECT ");
    query.push(SUMS).push(format!(
        ", ARRAY[{}] AS latency_counts FROM",
        slots.join(", ")
    ));
    let by_client = matches!(scope, Scope::Client(_));
    push_merged(&mut query, scope, by_client, since, split, until);
    query.build_query_as().fetch_one(executor).await
}

/// The partners (`partners`) or API clients with the most calls in `[since, until)`, whole hours
/// before `split` read from the rollup.
pub async fn rolled_busiest(
    executor: impl PgExecutor<'_>,
    partners: bool,
    since: OffsetDateTime,
    split: OffsetDateTime,
    until: OffsetDateTime,
    limit: i64,
) -> Result<Vec<BusiestRow>, sqlx::Error> {
    let (key, join) = if partners {
        ("partner_key", "LEFT JOIN partners n ON n.tenant_id = c.key")
    } else {
        ("client_key", "LEFT JOIN api_clients n ON n.id = c.key")
    };
    let name = if partners { "n.display_name" } else { "n.name" };
    let mut query = QueryBuilder::new(format!(
        "SELECT n.id, {name} AS name, c.key, c.calls, c.errors FROM (SELECT {key} AS key, \
         sum(calls)::int8 AS calls, sum(client_errors + throttled + server_errors)::int8 AS errors FROM"
    ));
    push_merged(&mut query, Scope::Estate, !partners, since, split, until);
    if !partners {
        query.push(" WHERE client_key <> '00000000-0000-0000-0000-000000000000'::uuid");
    }
    query
        .push(" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ")
        .push_bind(limit)
        .push(format!(") c {join} ORDER BY c.calls DESC, c.key"));
    query.build_query_as().fetch_all(executor).await
}
