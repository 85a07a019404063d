//! The command line: `serve` (production), `demo` (everything embedded), `migrate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::postgres::PgConnectOptions;

use crate::app::{App, AppState};
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat};
use crate::local_pg::{LocalCluster, LocalPgError, ServerBinaries};
use crate::{db, telemetry, web};
use secrecy::{ExposeSecret, SecretString};

/// samgate keeps CSP partners' Secure Application Model consents and proxies Partner Center and
/// Microsoft Graph calls on their behalf.
#[derive(Debug, Parser)]
#[command(name = "samgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (production). Reads its configuration from the environment (see
    /// .env.sample); refuses to start while any variable is missing or malformed.
    Serve {
        /// Do not apply pending database migrations at start (run `samgate migrate` separately).
        #[arg(long, env = "SAMGATE_SKIP_MIGRATIONS")]
        skip_migrations: bool,
    },
    /// Run samgate with everything embedded: a private PostgreSQL under .samgate/pg (unless
    /// DATABASE_URL is set) and demo data. For trying samgate out, never for production.
    Demo {
        /// Where the private PostgreSQL keeps its data.
        #[arg(long, env = "SAMGATE_DEMO_DIR", default_value = ".samgate")]
        dir: PathBuf,
        /// Address to serve on.
        #[arg(long, env = "SAMGATE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Apply pending database migrations to DATABASE_URL and exit.
    Migrate,
}

/// Parses the command line, runs the command, and turns failures into a message and exit code.
pub fn main() -> ExitCode {
    // A .env file is a development convenience; real deployments set the environment.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("samgate: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("samgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { skip_migrations } => serve(skip_migrations).await,
        Command::Demo { dir, listen } => demo(dir, listen).await,
        Command::Migrate => migrate().await,
    }
}

fn database_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    // The URL may hold a password: the parse error is reported without the value.
    PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))
}

async fn serve(skip_migrations: bool) -> anyhow::Result<()> {
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

async fn migrate() -> anyhow::Result<()> {
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set SAMGATE_LISTEN to another address)",
                config.listen
            )
        })?;
    let app = App {
        config,
        pool: pool.clone(),
        clock: Arc::new(SystemClock),
    };
    let router = web::router(AppState(Arc::new(app)));
    tracing::info!(listen = %listener.local_addr()?, "samgate is serving");
    web::serve(router, listener, web::shutdown_signal()).await?;
    pool.close().await;
    tracing::info!("samgate stopped");
    Ok(())
}

/// The private cluster of `demo`, locked against a second demo and stopped on the way out.
struct DemoDatabase {
    cluster: LocalCluster,
    _lock: std::fs::File,
}

impl DemoDatabase {
    fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let binaries = ServerBinaries::discover().map_err(explain_local_pg)?;
        let cluster = LocalCluster::new(dir.join("pg"), binaries).map_err(explain_local_pg)?;
        let Some(mut lock) = cluster.try_lock("demo.lock").map_err(explain_local_pg)? else {
            let owner = std::fs::read_to_string(cluster.root().join("demo.lock")).unwrap_or_default();
            anyhow::bail!(
                "another `samgate demo` (pid {}) is already running on {}; stop it first (Ctrl-C), \
                 or point this one elsewhere with --dir",
                owner.trim(),
                cluster.root().display()
            );
        };
        cluster.write_owner(&mut lock).map_err(explain_local_pg)?;
        if cluster.ensure_initialized().map_err(explain_local_pg)? {
            println!("samgate: created a private PostgreSQL cluster in {}", cluster.root().display());
        }
        if !cluster.is_running() {
            cluster.start(true).map_err(explain_local_pg)?;
        }
        Ok(Self {
            cluster,
            _lock: lock,
        })
    }
}

fn explain_local_pg(err: LocalPgError) -> anyhow::Error {
    anyhow::anyhow!("cannot start the private PostgreSQL: {err}")
}

async fn demo(dir: PathBuf, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    let (database_url, local) = match std::env::var("DATABASE_URL") {
        Ok(url) => (SecretString::from(url), None),
        Err(_) => {
            let local = tokio::task::spawn_blocking(move || DemoDatabase::start(&dir)).await??;
            let admin = db::connect(local.cluster.connect_options("postgres"), 1).await?;
            db::ensure_database(&admin, "samgate").await?;
            admin.close().await;
            (SecretString::from(local.cluster.database_url("samgate")), Some(local))
        }
    };
    let result = run_demo(database_url, listen).await;
    if let Some(local) = local {
        println!("samgate: stopping the private PostgreSQL");
        tokio::task::spawn_blocking(move || local.cluster.stop(true)).await??;
    }
    result
}

async fn run_demo(database_url: SecretString, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let pool = db::connect(database_options(&database_url)?, 10)
        .await
        .context("cannot connect to the demo database")?;
    db::migrate(&pool).await.context("migrations failed")?;
    let public_url = url::Url::parse(&format!("http://{listen}/"))?;
    let lookup = |name: &str| match name {
        "DATABASE_URL" => Some(database_url.expose_secret().to_owned()),
        "SAMGATE_PUBLIC_URL" => Some(public_url.to_string()),
        "SAMGATE_LISTEN" => Some(listen.to_string()),
        other => std::env::var(other).ok(),
    };
    let config = Config::from_lookup(&lookup)?;
    println!();
    println!("  samgate demo is starting on {public_url}");
    println!("    home page   {public_url}");
    println!("    liveness    {public_url}healthz");
    println!("    readiness   {public_url}readyz");
    println!("  Press Ctrl-C to stop (the private PostgreSQL stops too; its data is kept).");
    println!();
    run_server(config, pool).await
}
