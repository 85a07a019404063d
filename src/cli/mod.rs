//! The command line: `serve` (production), `demo` (everything embedded), `migrate`, `doctor`, and
//! one file per command group that parses its arguments, calls the service function the admin UI
//! and the API call too, and prints the outcome. Here: the command tree, exit statuses, and what
//! the groups share (the app of one-shot commands, lifetimes, timestamps).

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::{db, onboarding, telemetry};

mod clients;
#[cfg(feature = "demo")]
mod demo;
mod doctor;
mod invitations;
mod keys;
mod partners;
mod serve;
mod staff;
mod webhooks;

/// samgate keeps CSP partners' Secure Application Model consents and proxies Partner Center and
/// Microsoft Graph calls on their behalf.
#[derive(Debug, Parser)]
#[command(name = "samgate", version, about, long_about = None)]
pub struct Cli {
    /// Print results as JSON (list and create commands of `invitations` and `clients`, `doctor`).
    #[arg(long, global = true)]
    json: bool,
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
    #[cfg(feature = "demo")]
    Demo {
        /// Where the private PostgreSQL keeps its data.
        #[arg(long, env = "SAMGATE_DEMO_DIR", default_value = ".samgate")]
        dir: std::path::PathBuf,
        /// Address to serve on.
        #[arg(long, env = "SAMGATE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Apply pending database migrations to DATABASE_URL and exit.
    Migrate,
    /// Invitation links for partner admins.
    #[command(subcommand)]
    Invitations(invitations::InvitationsCommand),
    /// Key-encryption keys: generate, rotate, status.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// API clients (backend services) and their keys.
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// CPV staff accounts for the admin UI: add, list, disable, set-role, reset-mfa.
    #[command(subcommand)]
    Staff(staff::StaffCommand),
    /// Partners: refresh grants now, offboard.
    #[command(subcommand)]
    Partners(partners::PartnersCommand),
    /// Run the background jobs (keep-alive, customer sync, webhook delivery, housekeeping) without serving HTTP,
    /// for deployments that split roles (then set SAMGATE_BACKGROUND_JOBS=false on `serve`).
    Worker,
    /// Webhook endpoints and deliveries: add, list, rotate-secret, disable, enable, deliveries, replay.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Check this configuration against the services it names (configuration, database,
    /// migrations, key ring, app credential, redirect URI, Partner Center, Graph): one line per
    /// check, OK, WARN, FAIL with the fix, or SKIP. Exit status 0 when nothing failed, 1 when a
    /// check failed. Reads the environment as `serve` does; prints no secret.
    Doctor {
        /// Seconds each check may take (the key-ring check, which reads every sealed row, six
        /// times as long).
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

/// Parses the command line, runs the command, and turns failures into a message and exit code.
pub fn main() -> ExitCode {
    // A .env file is a development convenience; real deployments set the environment.
    let _ = dotenvy::dotenv();
    // `SAMGATE_ENV_FILE=.samgate/demo.env samgate …` points one-shot commands at a running demo.
    if let Ok(path) = std::env::var("SAMGATE_ENV_FILE")
        && let Err(err) = dotenvy::from_path(&path)
    {
        eprintln!("samgate: cannot read SAMGATE_ENV_FILE {path}: {err}");
        return ExitCode::FAILURE;
    }
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
            match err.downcast_ref::<Incomplete>() {
                Some(_) => ExitCode::from(EXIT_INCOMPLETE),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// Exit status of a command that ran but did not do all it was asked (some partners failed or
/// need their admin); 1 is any other failure, 2 a usage error (from the argument parser).
pub const EXIT_INCOMPLETE: u8 = 3;

/// A command that ran to the end with part of the work not done; exits with [`EXIT_INCOMPLETE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Incomplete(pub String);

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { skip_migrations } => serve::serve(skip_migrations).await,
        #[cfg(feature = "demo")]
        Command::Demo { dir, listen } => demo::demo(dir, listen).await,
        Command::Migrate => serve::migrate().await,
        Command::Invitations(command) => invitations::run(command, cli.json).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Clients(command) => clients::run(command, cli.json).await,
        Command::Staff(command) => staff::run(command).await,
        Command::Partners(command) => partners::run(command).await,
        Command::Worker => serve::worker().await,
        Command::Webhooks(command) => webhooks::run(command).await,
        Command::Doctor { timeout } => doctor::doctor(timeout, cli.json).await,
    }
}

/// The configured app for one-shot commands (same environment as `serve`).
async fn command_app() -> anyhow::Result<App> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    let pool = db::connect(database_options(&config.database_url)?, 4)
        .await
        .context("cannot connect to DATABASE_URL")?;
    App::build(config, pool, Arc::new(SystemClock))
}

/// Parses `7d`, `48h`, `30m` into a duration.
fn parse_lifetime(text: &str) -> anyhow::Result<std::time::Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--expires must look like 7d, 48h or 30m"))?;
    let seconds = match unit {
        "d" => number * 86_400,
        "h" => number * 3_600,
        "m" => number * 60,
        _ => anyhow::bail!("--expires must look like 7d, 48h or 30m"),
    };
    anyhow::ensure!(
        (60..=90 * 86_400).contains(&seconds),
        "--expires must be between 1 minute and 90 days"
    );
    Ok(std::time::Duration::from_secs(seconds))
}

/// A timestamp for `--json` output (RFC 3339, UTC).
fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The link a partner admin opens.
pub fn consent_link(config: &Config, token: &onboarding::InvitationToken) -> String {
    onboarding::consent_link(&config.public_url, token)
}

fn database_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    // The URL may hold a password: the parse error is reported without the value.
    PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))
}
