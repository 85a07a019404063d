//! Creating and changing API clients and keys (CLI now, admin UI and JSON API later). Every change
//! writes an audit event in the same transaction; no audit event or log line holds a key.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::key::{ApiKey, IssuedKey};
use super::principal::PartnerScope;
use crate::db;
use crate::db::api_clients::{CLIENT_NAME_CONSTRAINT, ClientRow, NewClientRow, NewKeyRow};
use crate::domain::Actor;

/// A key's listing data (id, prefix, dates; never its hash).
pub use crate::db::api_clients::KeyRow as ApiKeyRecord;

const MAX_NAME_CHARS: usize = 100;

/// Why a change to clients or keys was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Another client has this name.
    #[error("an API client named {0:?} already exists")]
    DuplicateName(String),
    /// The name is empty, too long or has control characters.
    #[error("an API client name must be 1 to 100 characters without control characters")]
    InvalidName,
    /// No such client.
    #[error("no API client {0}")]
    ClientNotFound(Uuid),
    /// The client is disabled (no new keys, no changes).
    #[error("API client {0} is disabled")]
    ClientDisabled(Uuid),
    /// No such key.
    #[error("no API key {0}")]
    KeyNotFound(Uuid),
    /// The key was revoked before.
    #[error("API key {0} is already revoked")]
    KeyAlreadyRevoked(Uuid),
    /// The expiry is not in the future.
    #[error("a key's expiry must be in the future")]
    ExpiryInThePast,
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl ApiKeyError {
    /// A stable snake_case code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DuplicateName(_) => "api_client_name_taken",
            Self::InvalidName => "invalid_api_client_name",
            Self::ClientNotFound(_) => "api_client_not_found",
            Self::ClientDisabled(_) => "api_client_disabled",
            Self::KeyNotFound(_) => "api_key_not_found",
            Self::KeyAlreadyRevoked(_) => "api_key_already_revoked",
            Self::ExpiryInThePast => "invalid_expiry",
            Self::Database(_) => "internal",
        }
    }
}

/// An API client: a backend service that holds keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// The partners it may act for.
    pub scope: PartnerScope,
    /// Only GET, HEAD and OPTIONS.
    pub read_only: bool,
    /// Who created it.
    pub created_by: Actor,
    /// When.
    pub created_at: OffsetDateTime,
    /// When it was disabled (its keys stop working).
    pub disabled_at: Option<OffsetDateTime>,
}

impl From<ClientRow> for Client {
    fn from(row: ClientRow) -> Self {
        Self {
            id: row.id,
            scope: PartnerScope::from_stored(row.all_partners, row.partners),
            name: row.name,
            description: row.description,
            read_only: row.read_only,
            created_by: row.created_by,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        }
    }
}

/// What a person asks for when creating a client.
#[derive(Debug)]
pub struct NewClient<'a> {
    /// Unique name, e.g. `billing-sync`.
    pub name: &'a str,
    /// What the client is.
    pub description: Option<&'a str>,
    /// Partner tenant ids it may act for; `None` means every partner.
    pub partners: Option<Vec<Uuid>>,
    /// Only GET, HEAD and OPTIONS.
    pub read_only: bool,
    /// Who creates it.
    pub created_by: &'a Actor,
}

fn valid_name(name: &str) -> Result<&str, ApiKeyError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control);
    ok.then_some(name).ok_or(ApiKeyError::InvalidName)
}

fn scope_json(scope: &PartnerScope) -> serde_json::Value {
    match scope {
        PartnerScope::All => serde_json::json!("all"),
        PartnerScope::Only(tenants) => serde_json::json!(tenants),
    }
}

/// Creates a client. A taken name is [`ApiKeyError::DuplicateName`].
pub async fn create_client(
    pool: &PgPool,
    new: NewClient<'_>,
    now: OffsetDateTime,
) -> Result<Client, ApiKeyError> {
    let name = valid_name(new.name)?;
    let description = new.description.map(str::trim).filter(|d| !d.is_empty());
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let inserted = db::api_clients::insert_client(
        &mut *tx,
        &NewClientRow {
            id,
            name,
            description,
            all_partners: new.partners.is_none(),
            read_only: new.read_only,
            created_by: new.created_by,
        },
        now,
    )
    .await;
    match inserted {
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(CLIENT_NAME_CONSTRAINT) => {
            return Err(ApiKeyError::DuplicateName(name.to_owned()));
        }
        other => other?,
    }
    if let Some(partners) = &new.partners {
        db::api_clients::add_partners(&mut *tx, id, partners).await?;
    }
    let client: Client = db::api_clients::find_client(&mut *tx, id)
        .await?
        .ok_or(ApiKeyError::ClientNotFound(id))?
        .into();
    db::audit::record(
        &mut *tx,
        new.created_by,
        "api_client.created",
        None,
        serde_json::json!({
            "client_id": id,
            "name": client.name,
            "partners": scope_json(&client.scope),
            "read_only": client.read_only,
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(client)
}

/// Every client, by name.
pub async fn list_clients(pool: &PgPool) -> Result<Vec<Client>, ApiKeyError> {
    Ok(db::api_clients::list_clients(pool)
        .await?
        .into_iter()
        .map(Client::from)
        .collect())
}

/// The client named by id or by exact name.
pub async fn find_client(pool: &PgPool, id_or_name: &str) -> Result<Option<Client>, ApiKeyError> {
    let row = match Uuid::parse_str(id_or_name.trim()) {
        Ok(id) => db::api_clients::find_client(pool, id).await?,
        Err(_) => db::api_clients::find_client_by_name(pool, id_or_name.trim()).await?,
    };
    Ok(row.map(Client::from))
}

/// A client's keys, newest first (never their hashes).
pub async fn list_keys(pool: &PgPool, client_id: Uuid) -> Result<Vec<ApiKeyRecord>, ApiKeyError> {
    Ok(db::api_clients::list_keys(pool, client_id).await?)
}

/// Issues a key for an enabled client; the returned [`IssuedKey`] is the only copy in clear.
pub async fn issue_key(
    pool: &PgPool,
    client_id: Uuid,
    expires_at: Option<OffsetDateTime>,
    created_by: &Actor,
    now: OffsetDateTime,
) -> Result<(ApiKeyRecord, IssuedKey), ApiKeyError> {
    if expires_at.is_some_and(|at| at <= now) {
        return Err(ApiKeyError::ExpiryInThePast);
    }
    let mut tx = pool.begin().await?;
    // Locked so a concurrent disable cannot slip between the check and the insert.
    let client = db::api_clients::lock_client(&mut *tx, client_id)
        .await?
        .ok_or(ApiKeyError::ClientNotFound(client_id))?;
    if client.disabled_at.is_some() {
        return Err(ApiKeyError::ClientDisabled(client_id));
    }
    let key = ApiKey::generate();
    let prefix = key.display_prefix();
    let record = db::api_clients::insert_key(
        &mut *tx,
        &NewKeyRow {
            id: Uuid::now_v7(),
            client_id,
            prefix: &prefix,
            key_hash: &key.hash(),
            created_by,
            expires_at,
        },
        now,
    )
    .await?;
    db::audit::record(
        &mut *tx,
        created_by,
        "api_key.issued",
        None,
        serde_json::json!({
            "key_id": record.id,
            "client_id": client_id,
            "client_name": client.name,
            "prefix": prefix,
            "expires_at": expires_at.map(OffsetDateTime::unix_timestamp),
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((record, IssuedKey::new(key)))
}

/// Revokes a key. Verifier caches everywhere drop it on commit (database NOTIFY); use
/// [`ApiKeyVerifier::revoke_key`](super::ApiKeyVerifier::revoke_key) to also drop the local cache
/// without waiting for the notification.
pub async fn revoke_key(
    pool: &PgPool,
    key_id: Uuid,
    by: &Actor,
    now: OffsetDateTime,
) -> Result<ApiKeyRecord, ApiKeyError> {
    let mut tx = pool.begin().await?;
    let Some(record) = db::api_clients::revoke_key(&mut *tx, key_id, by, now).await? else {
        return Err(match db::api_clients::find_key(&mut *tx, key_id).await? {
            Some(_) => ApiKeyError::KeyAlreadyRevoked(key_id),
            None => ApiKeyError::KeyNotFound(key_id),
        });
    };
    db::audit::record(
        &mut *tx,
        by,
        "api_key.revoked",
        None,
        serde_json::json!({
            "key_id": key_id,
            "client_id": record.client_id,
            "prefix": record.prefix,
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}

/// Replaces a client's partner scope (`None`: every partner).
pub async fn set_client_partners(
    pool: &PgPool,
    client_id: Uuid,
    partners: Option<Vec<Uuid>>,
    by: &Actor,
    now: OffsetDateTime,
) -> Result<Client, ApiKeyError> {
    let mut tx = pool.begin().await?;
    let before: Client = db::api_clients::lock_client(&mut *tx, client_id)
        .await?
        .ok_or(ApiKeyError::ClientNotFound(client_id))?
        .into();
    if before.disabled_at.is_some() {
        return Err(ApiKeyError::ClientDisabled(client_id));
    }
    db::api_clients::set_all_partners(&mut *tx, client_id, partners.is_none()).await?;
    db::api_clients::clear_partners(&mut *tx, client_id).await?;
    if let Some(partners) = &partners {
        db::api_clients::add_partners(&mut *tx, client_id, partners).await?;
    }
    let after: Client = db::api_clients::find_client(&mut *tx, client_id)
        .await?
        .ok_or(ApiKeyError::ClientNotFound(client_id))?
        .into();
    db::audit::record(
        &mut *tx,
        by,
        "api_client.partners_changed",
        None,
        serde_json::json!({
            "client_id": client_id,
            "before": scope_json(&before.scope),
            "after": scope_json(&after.scope),
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Disables a client: all its keys stop working (caches drop them on the database NOTIFY).
pub async fn disable_client(
    pool: &PgPool,
    client_id: Uuid,
    by: &Actor,
    now: OffsetDateTime,
) -> Result<Client, ApiKeyError> {
    let mut tx = pool.begin().await?;
    if !db::api_clients::disable_client(&mut *tx, client_id, now).await? {
        return Err(
            match db::api_clients::find_client(&mut *tx, client_id).await? {
                Some(_) => ApiKeyError::ClientDisabled(client_id),
                None => ApiKeyError::ClientNotFound(client_id),
            },
        );
    }
    let client: Client = db::api_clients::find_client(&mut *tx, client_id)
        .await?
        .ok_or(ApiKeyError::ClientNotFound(client_id))?
        .into();
    db::audit::record(
        &mut *tx,
        by,
        "api_client.disabled",
        None,
        serde_json::json!({ "client_id": client_id, "name": client.name }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_are_trimmed_and_bounded() {
        assert_eq!(valid_name("  billing-sync ").ok(), Some("billing-sync"));
        for bad in ["", "   ", "a\nb", "tab\there", &"x".repeat(101)] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
        assert!(valid_name(&"é".repeat(100)).is_ok());
    }
}
