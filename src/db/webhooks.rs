//! Webhook endpoints, their sealed secrets, and the `webhook_deliveries` outbox.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Actor;
use crate::domain::DeliveryStatus;

/// A registered receiver.
#[derive(Debug, Clone, FromRow)]
pub struct Endpoint {
    /// Id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// Event types it wants (empty: all).
    pub event_types: Vec<String>,
    /// What it is.
    pub description: Option<String>,
    /// Who registered it.
    pub created_by: Actor,
    /// When.
    pub created_at: OffsetDateTime,
    /// When it was disabled.
    pub disabled_at: Option<OffsetDateTime>,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, event_types, description, created_by, created_at, disabled_at";

/// Inserts an endpoint.
pub async fn insert_endpoint(
    executor: impl PgExecutor<'_>,
    url: &str,
    event_types: &[String],
    description: Option<&str>,
    created_by: &Actor,
    now: OffsetDateTime,
) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (id, url, event_types, description, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(url)
    .bind(event_types)
    .bind(description)
    .bind(created_by)
    .bind(now)
    .fetch_one(executor)
    .await
}

/// Every endpoint, oldest first.
pub async fn list_endpoints(executor: impl PgExecutor<'_>) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
    ))
    .fetch_all(executor)
    .await
}

/// One endpoint.
pub async fn find_endpoint(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// One endpoint, locked until the transaction ends (a change of its state).
pub async fn lock_endpoint(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Sets when the endpoint was disabled (None: enabled).
pub async fn set_disabled_at(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    disabled_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_endpoints SET disabled_at = $2 WHERE id = $1")
        .bind(id)
        .bind(disabled_at)
        .execute(executor)
        .await?;
    Ok(())
}

/// An endpoint with what the admin list shows beside it.
#[derive(Debug, Clone, FromRow)]
pub struct EndpointOverview {
    /// The endpoint.
    #[sqlx(flatten)]
    pub endpoint: Endpoint,
    /// When its current secret was issued.
    pub secret_issued_at: Option<OffsetDateTime>,
    /// How many secrets it has had (more than one: it was rotated).
    pub secrets_issued: i64,
    /// Deliveries still to be made.
    pub pending: i64,
    /// Deliveries given up.
    pub failed: i64,
}

/// Every endpoint (or only the one with id `only`) with its secret facts and delivery counts,
/// oldest first.
pub async fn list_endpoint_overviews(
    executor: impl PgExecutor<'_>,
    only: Option<Uuid>,
) -> Result<Vec<EndpointOverview>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id, e.url, e.event_types, e.description, e.created_by, e.created_at, e.disabled_at,
                s.secret_issued_at, s.secrets_issued, d.pending, d.failed
         FROM webhook_endpoints e
         CROSS JOIN LATERAL (
             SELECT max(created_at) FILTER (WHERE expires_at IS NULL) AS secret_issued_at,
                    count(*) AS secrets_issued
             FROM webhook_secrets WHERE endpoint_id = e.id) s
         CROSS JOIN LATERAL (
             SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                    count(*) FILTER (WHERE status = 'failed') AS failed
             FROM webhook_deliveries WHERE endpoint_id = e.id) d
         WHERE $1::uuid IS NULL OR e.id = $1
         ORDER BY e.created_at, e.id",
    )
    .bind(only)
    .fetch_all(executor)
    .await
}

/// A sealed signing secret.
#[derive(Clone, FromRow)]
pub struct StoredSecret {
    /// Id (the vault row binding).
    pub id: Uuid,
    /// Sealed `whsec_…` text.
    pub sealed_secret: Vec<u8>,
    /// Until when a rotated-out secret still signs; None for the current one.
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Ends the overlap of the endpoint's current secret at `expires_at` (rotation).
pub async fn expire_current_secrets(
    executor: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_secrets SET expires_at = $2 WHERE endpoint_id = $1 AND expires_at IS NULL",
    )
    .bind(endpoint_id)
    .bind(expires_at)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Stores a new current secret; `id` must be the row the sealed value is bound to.
pub async fn insert_secret(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    endpoint_id: Uuid,
    sealed_secret: &[u8],
    kek_id: i32,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_secrets (id, endpoint_id, sealed_secret, kek_id, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(endpoint_id)
    .bind(sealed_secret)
    .bind(kek_id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// The secrets that sign at `now`: the current one and any still in their overlap, newest first.
pub async fn signing_secrets(
    executor: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<StoredSecret>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, sealed_secret, expires_at FROM webhook_secrets
         WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2)
         ORDER BY created_at DESC, id DESC",
    )
    .bind(endpoint_id)
    .bind(now)
    .fetch_all(executor)
    .await
}

/// Writes one delivery per enabled endpoint that wants `event_type` (the outbox write; call it in
/// the transaction of the state change). Returns how many endpoints will receive it.
pub async fn enqueue(
    executor: impl PgExecutor<'_>,
    message_id: &str,
    event_type: &str,
    partner_tenant_id: Option<Uuid>,
    payload: &serde_json::Value,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries
             (message_id, endpoint_id, event_type, partner_tenant_id, payload, created_at, next_attempt_at)
         SELECT $1, e.id, $2, $3, $4, $5, $5 FROM webhook_endpoints e
         WHERE e.disabled_at IS NULL AND (cardinality(e.event_types) = 0 OR $2 = ANY(e.event_types))",
    )
    .bind(message_id)
    .bind(event_type)
    .bind(partner_tenant_id)
    .bind(payload)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery as the worker and listings see it.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    /// Id.
    pub id: i64,
    /// `webhook-id`.
    pub message_id: String,
    /// Receiver.
    pub endpoint_id: Uuid,
    /// Receiver URL.
    pub url: String,
    /// Event type.
    pub event_type: String,
    /// Partner concerned.
    pub partner_tenant_id: Option<Uuid>,
    /// The JSON body.
    pub payload: serde_json::Value,
    /// When the event happened.
    pub created_at: OffsetDateTime,
    /// Pending, delivered or failed.
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_at: OffsetDateTime,
    /// Last attempt.
    pub last_attempt_at: Option<OffsetDateTime>,
    /// HTTP status of the last answer.
    pub last_status: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The start of the last answer's body.
    pub last_response: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<OffsetDateTime>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.message_id, d.endpoint_id, e.url, d.event_type, d.partner_tenant_id, \
     d.payload, d.created_at, d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status, \
     d.last_error, d.last_response, d.delivered_at";

/// Leases up to `limit` due deliveries of enabled endpoints (skipping rows others are claiming).
pub async fn claim_due(
    executor: impl PgExecutor<'_>,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as(&format!(
        "WITH due AS (
             SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1
               AND (d.lease_until IS NULL OR d.lease_until <= $1) AND e.disabled_at IS NULL
             ORDER BY d.next_attempt_at, d.id LIMIT $3
             FOR UPDATE OF d SKIP LOCKED),
         claimed AS (
             UPDATE webhook_deliveries w SET lease_until = $2 FROM due WHERE w.id = due.id RETURNING w.*)
         SELECT {DELIVERY_COLUMNS} FROM claimed d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         ORDER BY d.id"
    ))
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// The outcome of one attempt.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// When it was made.
    pub at: OffsetDateTime,
    /// HTTP status, if an answer came.
    pub status: Option<i32>,
    /// Why it failed, if it did.
    pub error: Option<&'a str>,
    /// The start of the answer's body.
    pub response: Option<&'a str>,
}

/// Records a successful attempt.
pub async fn mark_delivered(
    executor: impl PgExecutor<'_>,
    id: i64,
    attempt: &Attempt<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, lease_until = NULL,
                last_attempt_at = $2, last_status = $3, last_error = NULL, last_response = $4, delivered_at = $2
         WHERE id = $1",
    )
    .bind(id)
    .bind(attempt.at)
    .bind(attempt.status)
    .bind(attempt.response)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `next_attempt_at`, or given up (`failed`) when None.
pub async fn mark_attempt_failed(
    executor: impl PgExecutor<'_>,
    id: i64,
    attempt: &Attempt<'_>,
    next_attempt_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = NULL,
                status = CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                next_attempt_at = COALESCE($5, next_attempt_at),
                last_attempt_at = $2, last_status = $3, last_error = $4, last_response = $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(attempt.at)
    .bind(attempt.status)
    .bind(attempt.error)
    .bind(next_attempt_at)
    .bind(attempt.response)
    .execute(executor)
    .await?;
    Ok(())
}

/// Deliveries, newest first, optionally of one endpoint or in one status.
pub async fn list_deliveries(
    executor: impl PgExecutor<'_>,
    endpoint_id: Option<Uuid>,
    status: Option<DeliveryStatus>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE ($1::uuid IS NULL OR d.endpoint_id = $1) AND ($2::text IS NULL OR d.status = $2)
         ORDER BY d.id DESC LIMIT $3"
    ))
    .bind(endpoint_id)
    .bind(status.map(DeliveryStatus::as_str))
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// One delivery.
pub async fn find_delivery(
    executor: impl PgExecutor<'_>,
    id: i64,
) -> Result<Option<Delivery>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Queues a delivery again now, keeping its `webhook-id`; false when unknown.
pub async fn replay(
    executor: impl PgExecutor<'_>,
    id: i64,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, lease_until = NULL,
                delivered_at = NULL
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes up to `limit` deliveries delivered before `before`; returns how many.
pub async fn prune_delivered(
    executor: impl PgExecutor<'_>,
    before: OffsetDateTime,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE id IN (
             SELECT id FROM webhook_deliveries WHERE status = 'delivered' AND delivered_at < $1
             ORDER BY delivered_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
