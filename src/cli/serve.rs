//! `samgate serve`, `migrate` and `worker`: the long-running roles and the schema.

use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretString;

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::{db, telemetry, web};

use super::{command_app, database_options};

/// `serve`: the service, with its migrations applied first unless told not to.
pub(super) async fn serve(skip_migrations: bool) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    let pool = db::connect(database_options(&config.database_url)?, 20)
        .await
        .context("cannot connect to DATABASE_URL")?;
    if !skip_migrations {
        db::migrate(&pool).await.context("migrations failed")?;
    }
    run_server(config, pool).await
}

/// `migrate`: applies pending migrations to `DATABASE_URL` and exits.
pub(super) async fn migrate() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .map(SecretString::from)
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not set"))?;
    let pool = db::connect(database_options(&url)?, 2)
        .await
        .context("cannot connect to DATABASE_URL")?;
    db::migrate(&pool).await.context("migrations failed")?;
    println!("samgate: migrations applied");
    Ok(())
}

async fn run_server(config: Config, pool: sqlx::PgPool) -> anyhow::Result<()> {
    let app = App::build(config, pool.clone(), Arc::new(SystemClock))?;
    serve_app(app, pool).await
}

/// Serves `app` until a shutdown signal, then closes its pool.
pub(super) async fn serve_app(app: App, pool: sqlx::PgPool) -> anyhow::Result<()> {
    let listeners = crate::server::Listeners::bind(&app).await?;
    let served = crate::server::launch(Arc::new(app), listeners, web::shutdown_signal()).await;
    pool.close().await;
    tracing::info!("samgate stopped");
    served
}

/// `worker`: the background jobs without HTTP, until a shutdown signal.
pub(super) async fn worker() -> anyhow::Result<()> {
    let app = Arc::new(command_app().await?);
    app.check_key_ring().await?;
    let background = crate::jobs::background::Background::start_jobs(app.clone());
    tracing::info!(
        "samgate worker is running (keep-alive, customer sync, webhook delivery, housekeeping)"
    );
    web::shutdown_signal().await;
    background.stop().await;
    app.pool.close().await;
    tracing::info!("samgate worker stopped");
    Ok(())
}
