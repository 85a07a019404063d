//! The `app_consents`, `app_consent_runs` and `app_consent_run_items` tables: the CPV app's
//! consent state per customer as samgate last set it, and the bulk "grant to all" runs.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Actor;

/// The last known state of the CPV app's consent in one customer.
#[derive(Debug, Clone, FromRow)]
pub struct AppConsentRow {
    /// The customer's tenant.
    pub customer_tenant_id: Uuid,
    /// `granted`, `removed` or `failed`.
    pub state: String,
    /// Microsoft's or samgate's code of the failure.
    pub error_code: Option<String>,
    /// What to do about the failure.
    pub advice: Option<String>,
    /// Who.
    pub updated_by: Actor,
    /// When.
    pub updated_at: OffsetDateTime,
}

/// A state change of one customer's app consent.
#[derive(Debug)]
pub struct ConsentState<'a> {
    /// The partner.
    pub partner_id: Uuid,
    /// The customer tenant.
    pub customer_tenant_id: Uuid,
    /// `granted`, `removed` or `failed`.
    pub state: &'a str,
    /// Failure code.
    pub error_code: Option<&'a str>,
    /// Failure advice.
    pub advice: Option<&'a str>,
    /// Who.
    pub updated_by: &'a Actor,
}

/// Records the state of one customer's app consent (insert or replace).
pub async fn record_state(
    executor: impl PgExecutor<'_>,
    change: &ConsentState<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO app_consents
             (partner_id, customer_tenant_id, state, error_code, advice, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (partner_id, customer_tenant_id) DO UPDATE SET
             state = EXCLUDED.state, error_code = EXCLUDED.error_code, advice = EXCLUDED.advice,
             updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at",
    )
    .bind(change.partner_id)
    .bind(change.customer_tenant_id)
    .bind(change.state)
    .bind(change.error_code)
    .bind(change.advice)
    .bind(change.updated_by)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// The recorded states of these customers of the partner.
pub async fn states(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    customers: &[Uuid],
) -> Result<Vec<AppConsentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT customer_tenant_id, state, error_code, advice, updated_by, updated_at
         FROM app_consents WHERE partner_id = $1 AND customer_tenant_id = ANY($2)",
    )
    .bind(partner_id)
    .bind(customers)
    .fetch_all(executor)
    .await
}

/// A bulk grant run.
#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    /// Id.
    pub id: Uuid,
    /// The partner.
    pub partner_id: Uuid,
    /// `running`, `finished`, `failed` or `abandoned`.
    pub state: String,
    /// Why the run as a whole failed.
    pub error: Option<String>,
    /// What to do about it.
    pub advice: Option<String>,
    /// Who started it.
    pub started_by: Actor,
    /// When.
    pub started_at: OffsetDateTime,
    /// Last sign of life of its task.
    pub heartbeat_at: OffsetDateTime,
    /// When it ended.
    pub finished_at: Option<OffsetDateTime>,
    /// The run whose failed customers this run retries (none: every customer).
    pub retry_of: Option<Uuid>,
}

const RUN_COLUMNS: &str = "id, partner_id, state, error, advice, started_by, started_at, \
     heartbeat_at, finished_at, retry_of";

/// Marks the partner's running run abandoned when its task has shown no sign of life since
/// `stale_before` (its instance died); returns whether one was.
pub async fn abandon_stale_run(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    stale_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE app_consent_runs SET state = 'abandoned', finished_at = $3
         WHERE partner_id = $1 AND state = 'running' AND heartbeat_at < $2",
    )
    .bind(partner_id)
    .bind(stale_before)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Starts a run (over every customer, or over those that failed in `retry_of`) unless one is
/// running for the partner; returns the running run's id either way and whether it is new.
pub async fn start_run(
    conn: &mut sqlx::PgConnection,
    partner_id: Uuid,
    started_by: &Actor,
    retry_of: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<(Uuid, bool), sqlx::Error> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO app_consent_runs (id, partner_id, started_by, started_at, heartbeat_at, retry_of)
         VALUES ($1, $2, $3, $4, $4, $5)
         ON CONFLICT (partner_id) WHERE state = 'running' DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(partner_id)
    .bind(started_by)
    .bind(now)
    .bind(retry_of)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok((id, true));
    }
    let running: Uuid = sqlx::query_scalar(
        "SELECT id FROM app_consent_runs WHERE partner_id = $1 AND state = 'running'",
    )
    .bind(partner_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((running, false))
}

/// The run with this id.
pub async fn find_run(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM app_consent_runs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// The partner's most recent run.
pub async fn latest_run(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM app_consent_runs WHERE partner_id = $1
         ORDER BY started_at DESC, id DESC LIMIT 1"
    ))
    .bind(partner_id)
    .fetch_optional(executor)
    .await
}

/// Adds customers to a run as `pending` (a customer already in the run is kept as it is).
pub async fn add_items(
    executor: impl PgExecutor<'_>,
    run_id: Uuid,
    customers: &[(Uuid, String)],
    first_position: i32,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = customers.iter().map(|(id, _)| *id).collect();
    let names: Vec<String> = customers.iter().map(|(_, name)| name.clone()).collect();
    sqlx::query(
        "INSERT INTO app_consent_run_items (run_id, customer_tenant_id, customer_name, position)
         SELECT $1, c.id, c.name, $4 + c.ord::integer - 1
         FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS c(id, name, ord)
         ON CONFLICT (run_id, customer_tenant_id) DO NOTHING",
    )
    .bind(run_id)
    .bind(&ids)
    .bind(&names)
    .bind(first_position)
    .execute(executor)
    .await?;
    Ok(())
}

/// Sets the outcome of one customer of a run and bumps the run's heartbeat.
pub async fn set_item(
    executor: impl PgExecutor<'_>,
    run_id: Uuid,
    customer: Uuid,
    state: &str,
    error_code: Option<&str>,
    advice: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH item AS (
             UPDATE app_consent_run_items SET state = $3, error_code = $4, advice = $5, updated_at = $6
             WHERE run_id = $1 AND customer_tenant_id = $2
         )
         UPDATE app_consent_runs SET heartbeat_at = $6 WHERE id = $1",
    )
    .bind(run_id)
    .bind(customer)
    .bind(state)
    .bind(error_code)
    .bind(advice)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Bumps the run's heartbeat.
pub async fn heartbeat(
    executor: impl PgExecutor<'_>,
    run_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE app_consent_runs SET heartbeat_at = $2 WHERE id = $1")
        .bind(run_id)
        .bind(now)
        .execute(executor)
        .await?;
    Ok(())
}

/// Ends a running run as `finished` or `failed`.
pub async fn finish_run(
    executor: impl PgExecutor<'_>,
    run_id: Uuid,
    state: &str,
    error: Option<&str>,
    advice: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE app_consent_runs SET state = $2, error = $3, advice = $4, finished_at = $5,
                heartbeat_at = $5
         WHERE id = $1 AND state = 'running'",
    )
    .bind(run_id)
    .bind(state)
    .bind(error)
    .bind(advice)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// One customer of a run.
#[derive(Debug, Clone, FromRow)]
pub struct RunItemRow {
    /// The customer tenant.
    pub customer_tenant_id: Uuid,
    /// Its name as Partner Center listed it.
    pub customer_name: String,
    /// `pending`, `granted`, `already_granted` or `failed`.
    pub state: String,
    /// Failure code.
    pub error_code: Option<String>,
    /// Failure advice.
    pub advice: Option<String>,
    /// When its outcome was set.
    pub updated_at: Option<OffsetDateTime>,
}

/// The customers of a run in listing order.
pub async fn run_items(
    executor: impl PgExecutor<'_>,
    run_id: Uuid,
) -> Result<Vec<RunItemRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT customer_tenant_id, customer_name, state, error_code, advice, updated_at
         FROM app_consent_run_items WHERE run_id = $1 ORDER BY position, customer_tenant_id",
    )
    .bind(run_id)
    .fetch_all(executor)
    .await
}

/// The customers that failed in a run.
pub async fn failed_customers(
    executor: impl PgExecutor<'_>,
    run_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT customer_tenant_id FROM app_consent_run_items
         WHERE run_id = $1 AND state = 'failed' ORDER BY position",
    )
    .bind(run_id)
    .fetch_all(executor)
    .await
}
