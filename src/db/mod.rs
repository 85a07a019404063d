//! The only place with SQL: one file per table family, free functions taking an executor; the
//! caller owns the transaction. Queries are checked by the integration tests against PostgreSQL.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub mod access_tokens;
pub mod activity;
pub mod api_clients;
pub mod app_consents;
pub mod audit;
pub mod customers;
pub mod dashboard;
pub mod grants;
pub mod invitations;
pub mod lifecycle;
pub mod partners;
pub mod proxy_calls;
pub mod staff;
pub mod webhooks;

/// The embedded migrations (`migrations/`), never edited once merged.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Opens a pool that fails fast when the database is away (readiness must answer quickly).
pub async fn connect(
    options: PgConnectOptions,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    pool_options(max_connections).connect_with(options).await
}

/// Like [`connect`], but does not touch the database until first use.
pub fn connect_lazy(options: PgConnectOptions, max_connections: u32) -> PgPool {
    pool_options(max_connections).connect_lazy_with(options)
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
}

/// Applies pending migrations and creates the session store's schema.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await?;
    tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
        .migrate()
        .await
        .map_err(sqlx::migrate::MigrateError::Execute)?;
    Ok(())
}

/// Whether every embedded migration has been applied successfully.
pub async fn migrations_applied<'e, E>(executor: E) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_optional(executor)
            .await?
            .flatten();
    Ok(applied.unwrap_or(0) >= latest)
}

/// One row of `_sqlx_migrations`: what was applied, whether it finished, and its checksum.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppliedMigration {
    /// The migration's version (its file-name prefix).
    pub version: i64,
    /// Its description when it was applied.
    pub description: String,
    /// False when it failed partway.
    pub success: bool,
    /// SHA-384 of the SQL that was applied.
    pub checksum: Vec<u8>,
}

/// The migrations recorded in the database, ascending; `None` when none were ever applied (no
/// `_sqlx_migrations` table).
pub async fn applied_migrations(
    pool: &PgPool,
) -> Result<Option<Vec<AppliedMigration>>, sqlx::Error> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query_as(
        "SELECT version, description, success, checksum FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(rows))
}

/// Whether the session store's table exists (created by [`migrate`] after the embedded ones).
pub async fn session_store_exists(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('tower_sessions.session')::text")
            .fetch_one(pool)
            .await?;
    Ok(exists.is_some())
}

/// The server's version string (`SHOW server_version`), e.g. `17.2`.
pub async fn server_version(pool: &PgPool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SHOW server_version")
        .fetch_one(pool)
        .await
}

/// Creates `name` on the server behind `admin` unless it exists (demo and tests).
pub async fn ensure_database(admin: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(admin)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {}", quote_identifier(name)))
            .execute(admin)
            .await?;
    }
    Ok(())
}

/// Quotes an SQL identifier (database names cannot be bound as parameters).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
