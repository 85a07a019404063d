//! Server-side sessions in PostgreSQL (tower-sessions), with the session id stored only as a
//! hash: a database reader cannot lift a live session id from the table.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

/// A session store that keys rows by SHA-256 of the session id.
#[derive(Debug, Clone)]
pub struct HashedIdStore {
    inner: PostgresStore,
}

impl HashedIdStore {
    /// Wraps the PostgreSQL store (its schema is created by `db::migrate`).
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self {
            inner: PostgresStore::new(pool),
        }
    }
}

fn stored_id(id: &Id) -> Id {
    let digest = Sha256::digest(id.0.to_le_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(bytes))
}

#[async_trait]
impl SessionStore for HashedIdStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // 128 random bits: a collision is not a practical concern, so create is a save.
        self.save(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let mut stored = record.clone();
        stored.id = stored_id(&record.id);
        self.inner.save(&stored).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.inner.load(&stored_id(id)).await?.map(|mut record| {
            record.id = *id;
            record
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.inner.delete(&stored_id(id)).await
    }
}

/// The session layer: `HttpOnly`, `SameSite=Lax`, `Secure` (and the `__Host-` name prefix) when
/// the public URL is https, expiring after `idle` without use.
pub fn layer(
    pool: sqlx::PgPool,
    https: bool,
    idle: time::Duration,
) -> SessionManagerLayer<HashedIdStore> {
    let name = if https {
        "__Host-samgate_session"
    } else {
        "samgate_session"
    };
    SessionManagerLayer::new(HashedIdStore::new(pool))
        .with_name(name)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
}
