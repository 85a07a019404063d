//! The `api_clients`, `api_client_partners` and `api_keys` tables. Keys are found by SHA-256 only;
//! no function here returns a key hash. Triggers NOTIFY `samgate_api_keys` on every change that
//! matters to a verifier cache (see `migrations/0003_api_clients.sql`).

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Actor;

/// The unique constraint on client names.
pub const CLIENT_NAME_CONSTRAINT: &str = "api_clients_name_key";

/// The channel the database notifies when a key or client changes.
pub const CHANGES_CHANNEL: &str = "samgate_api_keys";

/// An API client with the partner tenants it is scoped to.
#[derive(Debug, Clone, FromRow)]
pub struct ClientRow {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// What the client is.
    pub description: Option<String>,
    /// Scoped to every partner.
    pub all_partners: bool,
    /// Only safe methods.
    pub read_only: bool,
    /// Who created it.
    pub created_by: Actor,
    /// When.
    pub created_at: OffsetDateTime,
    /// When it was disabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// Allowed partner tenants (meaningful when not `all_partners`), sorted.
    pub partners: Vec<Uuid>,
}

const CLIENT_COLUMNS: &str = "c.id, c.name, c.description, c.all_partners, c.read_only, c.created_by, \
     c.created_at, c.disabled_at, ARRAY(SELECT p.partner_tenant_id FROM api_client_partners p \
     WHERE p.client_id = c.id ORDER BY p.partner_tenant_id) AS partners";

/// A key's listing data (never its hash).
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    /// Id.
    pub id: Uuid,
    /// Its client.
    pub client_id: Uuid,
    /// The first characters of the key, e.g. `sgk_AbCd`.
    pub prefix: String,
    /// Who issued it.
    pub created_by: Actor,
    /// When.
    pub created_at: OffsetDateTime,
    /// Expiry, if any.
    pub expires_at: Option<OffsetDateTime>,
    /// Revocation time.
    pub revoked_at: Option<OffsetDateTime>,
    /// Who revoked it.
    pub revoked_by: Option<Actor>,
    /// Last successful verification (flushed in batches, so up to a minute behind).
    pub last_used_at: Option<OffsetDateTime>,
}

const KEY_COLUMNS: &str = "id, client_id, prefix, created_by, created_at, expires_at, revoked_at, \
                           revoked_by, last_used_at";

/// What a verifier needs to decide about a presented key.
#[derive(Debug, Clone, FromRow)]
pub struct VerificationRow {
    /// The key.
    pub key_id: Uuid,
    /// Its client.
    pub client_id: Uuid,
    /// The client's name.
    pub client_name: String,
    /// Key expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// Key revocation.
    pub revoked_at: Option<OffsetDateTime>,
    /// Client disabled.
    pub client_disabled_at: Option<OffsetDateTime>,
    /// Client scope: every partner.
    pub all_partners: bool,
    /// Client scope: safe methods only.
    pub read_only: bool,
    /// Client scope: these partner tenants.
    pub partners: Vec<Uuid>,
}

/// A new client's fields.
#[derive(Debug)]
pub struct NewClientRow<'a> {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// Every partner.
    pub all_partners: bool,
    /// Safe methods only.
    pub read_only: bool,
    /// Who creates it.
    pub created_by: &'a Actor,
}

/// Inserts a client (without partners; see [`add_partners`]). Fails on `api_clients_name_key`.
pub async fn insert_client(
    executor: impl PgExecutor<'_>,
    new: &NewClientRow<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_clients (id, name, description, all_partners, read_only, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new.id)
    .bind(new.name)
    .bind(new.description)
    .bind(new.all_partners)
    .bind(new.read_only)
    .bind(new.created_by)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Adds partner tenants to a client's scope (duplicates ignored).
pub async fn add_partners(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
    partner_tenant_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_client_partners (client_id, partner_tenant_id)
         SELECT $1, t FROM unnest($2::uuid[]) AS t ON CONFLICT DO NOTHING",
    )
    .bind(client_id)
    .bind(partner_tenant_ids)
    .execute(executor)
    .await?;
    Ok(())
}

/// Removes every partner tenant from a client's scope.
pub async fn clear_partners(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api_client_partners WHERE client_id = $1")
        .bind(client_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Sets whether a client is scoped to every partner.
pub async fn set_all_partners(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
    all_partners: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_clients SET all_partners = $2 WHERE id = $1")
        .bind(client_id)
        .bind(all_partners)
        .execute(executor)
        .await?;
    Ok(())
}

/// Disables a client; false when it is unknown or already disabled.
pub async fn disable_client(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_clients SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL",
    )
    .bind(client_id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The client with this id.
pub async fn find_client(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<ClientRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM api_clients c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// The client with this id, locked for update (key issuance, scope changes).
pub async fn lock_client(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<ClientRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM api_clients c WHERE c.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// The client with this exact name.
pub async fn find_client_by_name(
    executor: impl PgExecutor<'_>,
    name: &str,
) -> Result<Option<ClientRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM api_clients c WHERE c.name = $1"
    ))
    .bind(name)
    .fetch_optional(executor)
    .await
}

/// Every client, by name.
pub async fn list_clients(executor: impl PgExecutor<'_>) -> Result<Vec<ClientRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM api_clients c ORDER BY c.name"
    ))
    .fetch_all(executor)
    .await
}

/// A new key's fields.
#[derive(Debug)]
pub struct NewKeyRow<'a> {
    /// Id.
    pub id: Uuid,
    /// Its client.
    pub client_id: Uuid,
    /// Display prefix.
    pub prefix: &'a str,
    /// SHA-256 of the whole key.
    pub key_hash: &'a [u8],
    /// Who issues it.
    pub created_by: &'a Actor,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
}

/// Inserts a key.
pub async fn insert_key(
    executor: impl PgExecutor<'_>,
    new: &NewKeyRow<'_>,
    now: OffsetDateTime,
) -> Result<KeyRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, client_id, prefix, key_hash, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {KEY_COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.client_id)
    .bind(new.prefix)
    .bind(new.key_hash)
    .bind(new.created_by)
    .bind(now)
    .bind(new.expires_at)
    .fetch_one(executor)
    .await
}

/// The key with this id.
pub async fn find_key(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await
}

/// A client's keys, newest first.
pub async fn list_keys(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE client_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(client_id)
    .fetch_all(executor)
    .await
}

/// Revokes a key that is not revoked yet; None when it is unknown or already revoked.
pub async fn revoke_key(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    by: &Actor,
    now: OffsetDateTime,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL
         RETURNING {KEY_COLUMNS}"
    ))
    .bind(id)
    .bind(now)
    .bind(by)
    .fetch_optional(executor)
    .await
}

/// The key whose SHA-256 is `key_hash`, with its client's state and scope (one round trip).
pub async fn find_for_verification(
    executor: impl PgExecutor<'_>,
    key_hash: &[u8],
) -> Result<Option<VerificationRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.id AS key_id, k.client_id, c.name AS client_name, k.expires_at, k.revoked_at,
                c.disabled_at AS client_disabled_at, c.all_partners, c.read_only,
                ARRAY(SELECT p.partner_tenant_id FROM api_client_partners p
                      WHERE p.client_id = c.id ORDER BY p.partner_tenant_id) AS partners
         FROM api_keys k JOIN api_clients c ON c.id = k.client_id
         WHERE k.key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(executor)
    .await
}

/// Records when keys were last used (one statement for a batch); never moves a time backwards.
pub async fn record_key_use(
    executor: impl PgExecutor<'_>,
    key_ids: &[Uuid],
    used_at: &[OffsetDateTime],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_keys k SET last_used_at = u.used_at
         FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, used_at)
         WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.used_at)",
    )
    .bind(key_ids)
    .bind(used_at)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
