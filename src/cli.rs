//! The command line: `serve` (production), `demo` (everything embedded), `migrate`, `doctor`.

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::postgres::PgConnectOptions;

use crate::app::App;
use crate::clock::{SystemClock, format_utc};
use crate::config::Config;
use crate::domain::Actor;
use crate::{db, onboarding, telemetry, web};
use secrecy::{ExposeSecret, SecretString};

#[cfg(feature = "demo")]
mod demo;
mod doctor;

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
    Invitations(InvitationsCommand),
    /// Key-encryption keys: generate, rotate, status.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// API clients (backend services) and their keys.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// CPV staff accounts for the admin UI: add, list, disable, set-role, reset-mfa.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Partners: refresh grants now, offboard.
    #[command(subcommand)]
    Partners(PartnersCommand),
    /// Run the background jobs (keep-alive, customer sync, webhook delivery, housekeeping) without serving HTTP,
    /// for deployments that split roles (then set SAMGATE_BACKGROUND_JOBS=false on `serve`).
    Worker,
    /// Webhook endpoints and deliveries: add, list, rotate-secret, disable, enable, deliveries, replay.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
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

#[derive(Debug, Subcommand)]
enum InvitationsCommand {
    /// Create an invitation and print its link (shown once).
    Create {
        /// The partner's name as you know it (shown on the consent page).
        #[arg(long)]
        partner_name: String,
        /// The partner's tenant id or verified domain, if known: the consenting admin must belong
        /// to it.
        #[arg(long)]
        tenant: Option<String>,
        /// The admin's sign-in name, pre-filled at Microsoft.
        #[arg(long)]
        login_hint: Option<String>,
        /// Lifetime, e.g. 7d, 48h, 30m (default SAMGATE_INVITATION_TTL_HOURS).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List recent invitations.
    List,
    /// Revoke a pending invitation by id.
    Revoke {
        /// The invitation id (from `list`).
        id: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a new random key-encryption key (base64 of 32 bytes) for SAMGATE_KEKS.
    Generate,
    /// Re-wrap every sealed secret under the active KEK, in batches, without decrypting it.
    Rotate {
        /// Rows per transaction.
        #[arg(long, default_value_t = 200)]
        batch: i64,
    },
    /// Show how many sealed secrets each KEK wraps.
    Status,
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
        Command::Serve { skip_migrations } => serve(skip_migrations).await,
        #[cfg(feature = "demo")]
        Command::Demo { dir, listen } => demo::demo(dir, listen).await,
        Command::Migrate => migrate().await,
        Command::Invitations(command) => invitations(command, cli.json).await,
        Command::Keys(command) => keys(command).await,
        Command::Clients(command) => clients(command, cli.json).await,
        Command::Staff(command) => staff(command).await,
        Command::Partners(command) => partners(command).await,
        Command::Worker => worker().await,
        Command::Webhooks(command) => webhooks(command).await,
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

async fn invitations(command: InvitationsCommand, json: bool) -> anyhow::Result<()> {
    let app = command_app().await?;
    let now = app.clock.now();
    match command {
        InvitationsCommand::Create {
            partner_name,
            tenant,
            login_hint,
            expires,
        } => {
            let expected_tenant = match tenant.as_deref() {
                Some(t) => Some(onboarding::parse_expected_tenant(t).ok_or_else(|| {
                    anyhow::anyhow!("--tenant must be a tenant id (GUID) or a domain name")
                })?),
                None => None,
            };
            let ttl = match expires.as_deref() {
                Some(text) => parse_lifetime(text)?,
                None => app.config.invitation_ttl,
            };
            let (invitation, token) = onboarding::create_invitation(
                &app.pool,
                &onboarding::NewInvitationRequest {
                    partner_name: partner_name.trim(),
                    expected_tenant: expected_tenant.as_deref(),
                    login_hint: login_hint.as_deref(),
                    partner_id: None,
                    ttl,
                    created_by: &Actor::Cli,
                },
                now,
            )
            .await?;
            let link = consent_link(&app.config, &token);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": invitation.id,
                        "partner_name": invitation.partner_name,
                        "expires_at": rfc3339(invitation.expires_at),
                        "link": link,
                    })
                );
                return Ok(());
            }
            println!(
                "invitation {} for {}",
                invitation.id, invitation.partner_name
            );
            println!("expires   {}", format_utc(invitation.expires_at));
            println!("link      {link}");
            println!("(the link is shown only now; samgate stores only its hash)");
        }
        InvitationsCommand::List => {
            let mut rows = Vec::new();
            for invitation in db::invitations::list(&app.pool, 100).await? {
                let state = match onboarding::InvitationState::of(Some(invitation.clone()), now) {
                    onboarding::InvitationState::Usable(_) => "pending",
                    onboarding::InvitationState::Expired => "expired",
                    onboarding::InvitationState::Used => "used",
                    onboarding::InvitationState::Revoked => "revoked",
                    onboarding::InvitationState::Unknown => "unknown",
                };
                if json {
                    rows.push(serde_json::json!({
                        "id": invitation.id,
                        "state": state,
                        "partner_name": invitation.partner_name,
                        "expires_at": rfc3339(invitation.expires_at),
                    }));
                    continue;
                }
                println!(
                    "{}  {:8}  {}  expires {}",
                    invitation.id,
                    state,
                    invitation.partner_name,
                    format_utc(invitation.expires_at)
                );
            }
            if json {
                println!("{}", serde_json::Value::from(rows));
            }
        }
        InvitationsCommand::Revoke { id } => {
            anyhow::ensure!(
                onboarding::revoke_invitation(&app.pool, id, &Actor::Cli, now).await?,
                "invitation {id} is not pending (unknown, used, or already revoked)"
            );
            println!("invitation {id} revoked");
        }
    }
    Ok(())
}

/// The link a partner admin opens.
pub fn consent_link(config: &Config, token: &onboarding::InvitationToken) -> String {
    onboarding::consent_link(&config.public_url, token)
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        // The key is the command's output, on stdout only; it needs no configuration, since it
        // is how the first key of a ring is made.
        KeysCommand::Generate => println!("{}", crate::vault::generate_key()),
        KeysCommand::Status => {
            let app = command_app().await?;
            println!("active KEK: {}", app.vault.active_kek_id());
            for (kind, kek, count) in db::grants::sealed_by_kek(&app.pool).await? {
                println!("KEK {kek}: {count} {kind}");
            }
        }
        KeysCommand::Rotate { batch } => {
            let app = command_app().await?;
            let report = crate::jobs::key_rotation::run(&app, batch, |done| {
                println!("re-wrapped {done} so far");
            })
            .await?;
            println!(
                "re-wrapped {} sealed secrets under KEK {}",
                report,
                app.vault.active_kek_id()
            );
        }
    }
    Ok(())
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
    let app = App::build(config, pool.clone(), Arc::new(SystemClock))?;
    serve_app(app, pool).await
}

async fn serve_app(app: App, pool: sqlx::PgPool) -> anyhow::Result<()> {
    let listeners = crate::server::Listeners::bind(&app).await?;
    let served = crate::server::launch(Arc::new(app), listeners, web::shutdown_signal()).await;
    pool.close().await;
    tracing::info!("samgate stopped");
    served
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Create an API client scoped to some partners (--partner, repeatable) or to all of them.
    #[command(group(clap::ArgGroup::new("scope").required(true).args(["partner", "all_partners"])))]
    Create {
        /// A unique name, e.g. billing-sync.
        #[arg(long)]
        name: String,
        /// A partner tenant id the client may act for (repeat for several).
        #[arg(long, value_name = "TENANT_ID")]
        partner: Vec<uuid::Uuid>,
        /// Let the client act for every partner, present and future.
        #[arg(long)]
        all_partners: bool,
        /// Allow only GET, HEAD and OPTIONS.
        #[arg(long)]
        read_only: bool,
        /// What the client is.
        #[arg(long)]
        description: Option<String>,
    },
    /// List clients and their scopes.
    List,
    /// Disable a client: all its keys stop working.
    Disable {
        /// The client's name or id.
        client: String,
    },
    /// Keys of a client: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(ClientKeysCommand),
}

#[derive(Debug, Subcommand)]
enum ClientKeysCommand {
    /// Issue a key and print it (shown once; samgate keeps only its hash).
    Create {
        /// The client's name or id.
        #[arg(long)]
        client: String,
        /// Lifetime, e.g. 90d, 48h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List a client's keys (prefix, dates; never the key).
    List {
        /// The client's name or id.
        #[arg(long)]
        client: String,
    },
    /// Revoke a key by id: every samgate instance refuses it within seconds.
    Revoke {
        /// The key id (from `list`).
        key_id: uuid::Uuid,
    },
}

async fn clients(command: ClientsCommand, json: bool) -> anyhow::Result<()> {
    use crate::api_keys::{self, PartnerScope};
    let app = command_app().await?;
    let now = app.clock.now();
    let find = async |reference: &str| -> anyhow::Result<api_keys::Client> {
        api_keys::find_client(&app.pool, reference)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("no API client named {reference:?} (see `samgate clients list`)")
            })
    };
    let when = |at: Option<time::OffsetDateTime>| at.map_or_else(|| "-".to_owned(), format_utc);
    match command {
        ClientsCommand::Create {
            name,
            partner,
            all_partners,
            read_only,
            description,
        } => {
            let client = api_keys::create_client(
                &app.pool,
                api_keys::NewClient {
                    name: &name,
                    description: description.as_deref(),
                    partners: (!all_partners).then_some(partner),
                    read_only,
                    created_by: &Actor::Cli,
                },
                now,
            )
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": client.id, "name": client.name })
                );
                return Ok(());
            }
            println!("API client {} ({}) created", client.name, client.id);
            println!("next: samgate clients keys create --client {}", client.name);
        }
        ClientsCommand::List => {
            let clients = api_keys::list_clients(&app.pool).await?;
            if json {
                let rows: Vec<serde_json::Value> = clients
                    .iter()
                    .map(|client| {
                        let partners = match &client.scope {
                            PartnerScope::All => serde_json::Value::from("all"),
                            PartnerScope::Only(tenants) => serde_json::json!(tenants),
                        };
                        serde_json::json!({
                            "id": client.id,
                            "name": client.name,
                            "enabled": client.disabled_at.is_none(),
                            "read_only": client.read_only,
                            "partners": partners,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::from(rows));
                return Ok(());
            }
            for client in clients {
                let scope = match &client.scope {
                    PartnerScope::All => "all partners".to_owned(),
                    PartnerScope::Only(tenants) => format!("{} partner(s)", tenants.len()),
                };
                let state = if client.disabled_at.is_some() {
                    "disabled"
                } else {
                    "enabled"
                };
                let access = if client.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                println!(
                    "{}  {:8}  {}  {scope}, {access}",
                    client.id, state, client.name
                );
                if let PartnerScope::Only(tenants) = &client.scope {
                    for tenant in tenants {
                        println!("    partner {tenant}");
                    }
                }
            }
        }
        ClientsCommand::Disable { client } => {
            let client = find(&client).await?;
            app.api_keys
                .disable_client(client.id, &Actor::Cli, now)
                .await?;
            println!(
                "API client {} disabled: its keys no longer work",
                client.name
            );
        }
        ClientsCommand::Keys(ClientKeysCommand::Create { client, expires }) => {
            let client = find(&client).await?;
            let expires_at = match expires.as_deref() {
                Some(text) => Some(now + parse_lifetime(text)?),
                None => None,
            };
            let (record, key) =
                api_keys::issue_key(&app.pool, client.id, expires_at, &Actor::Cli, now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": record.id,
                        "prefix": record.prefix,
                        "client": client.name,
                        "expires_at": record.expires_at.map(rfc3339),
                        "key": key.expose_secret(),
                    })
                );
                return Ok(());
            }
            // The key alone on stdout (KEY=$(samgate clients keys create …)); the rest on stderr.
            eprintln!(
                "key {} ({}) for API client {}, expires {}",
                record.id,
                record.prefix,
                client.name,
                when(record.expires_at)
            );
            println!("{}", key.expose_secret());
            eprintln!(
                "This key is shown only now and cannot be shown again: samgate stores only its hash."
            );
            eprintln!("Send it as `Authorization: Bearer <key>`.");
        }
        ClientsCommand::Keys(ClientKeysCommand::List { client }) => {
            let client = find(&client).await?;
            let mut rows = Vec::new();
            for key in api_keys::list_keys(&app.pool, client.id).await? {
                let state = match (key.revoked_at, key.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(at)) if at <= now => "expired",
                    _ => "active",
                };
                if json {
                    rows.push(serde_json::json!({
                        "id": key.id,
                        "prefix": key.prefix,
                        "state": state,
                        "created_at": rfc3339(key.created_at),
                        "expires_at": key.expires_at.map(rfc3339),
                        "last_used_at": key.last_used_at.map(rfc3339),
                    }));
                    continue;
                }
                println!(
                    "{}  {}…  {:7}  created {}  expires {}  last used {}",
                    key.id,
                    key.prefix,
                    state,
                    format_utc(key.created_at),
                    when(key.expires_at),
                    when(key.last_used_at)
                );
            }
            if json {
                println!("{}", serde_json::Value::from(rows));
            }
        }
        ClientsCommand::Keys(ClientKeysCommand::Revoke { key_id }) => {
            let record = app.api_keys.revoke_key(key_id, &Actor::Cli, now).await?;
            println!("key {} ({}…) revoked", record.id, record.prefix);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Add a staff member and print a generated password once (or use SAMGATE_STAFF_PASSWORD).
    Add {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// admin, operator or viewer.
        #[arg(long, value_parser = parse_role)]
        role: crate::staff::Role,
        /// Name shown in the admin UI (default: the part of the email before @).
        #[arg(long)]
        name: Option<String>,
    },
    /// List staff members.
    List,
    /// Disable a staff member by email: their sessions end at once.
    Disable {
        /// Sign-in email.
        email: String,
    },
    /// Change a staff member's role (their sessions end).
    SetRole {
        /// Sign-in email.
        email: String,
        /// admin, operator or viewer.
        #[arg(value_parser = parse_role)]
        role: crate::staff::Role,
    },
    /// Remove a staff member's second factor and recovery codes (a lost phone, a lock-out); their
    /// sessions end, and an admin sets up a new one at the next password sign-in. Audited.
    ResetMfa {
        /// Sign-in email.
        email: String,
    },
}

fn parse_role(text: &str) -> Result<crate::staff::Role, String> {
    crate::staff::Role::parse(text).ok_or_else(|| "expected admin, operator or viewer".to_owned())
}

async fn staff(command: StaffCommand) -> anyhow::Result<()> {
    let app = command_app().await?;
    let now = app.clock.now();
    let find = async |email: &str| -> anyhow::Result<db::staff::StaffMember> {
        let email = crate::staff::StaffEmail::parse(email)
            .ok_or_else(|| anyhow::anyhow!("{email:?} is not a valid email address"))?;
        db::staff::find_by_email(&app.pool, email.as_str())
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("no staff member with this email (see `samgate staff list`)")
            })
    };
    match command {
        StaffCommand::Add { email, role, name } => {
            let chosen = std::env::var("SAMGATE_STAFF_PASSWORD")
                .ok()
                .map(SecretString::from);
            let generated = chosen.is_none();
            let (member, password) = crate::staff::add_staff(
                &app.pool,
                crate::staff::NewStaffRequest {
                    email: &email,
                    display_name: name.as_deref(),
                    role,
                    password: chosen,
                    actor: &Actor::Cli,
                },
                now,
            )
            .await?;
            println!(
                "staff member {} ({}) added as {}",
                member.email, member.id, member.role
            );
            if generated {
                println!("password  {}", password.expose_secret());
                println!("(shown only now; samgate stores only an Argon2id hash)");
            } else {
                println!("password  taken from SAMGATE_STAFF_PASSWORD");
            }
        }
        StaffCommand::List => {
            for member in db::staff::list(&app.pool).await? {
                let state = if member.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                let last = member
                    .last_login_at
                    .map_or_else(|| "never".to_owned(), format_utc);
                println!(
                    "{}  {:8}  {:8}  {}  {}  last sign-in {last}",
                    member.id, member.role, state, member.email, member.display_name
                );
            }
        }
        StaffCommand::Disable { email } => {
            let member = find(&email).await?;
            crate::staff::disable_staff(&app.pool, member.id, &Actor::Cli, now).await?;
            println!("staff member {} disabled", member.email);
        }
        StaffCommand::SetRole { email, role } => {
            let member = find(&email).await?;
            crate::staff::set_role(&app.pool, member.id, role, &Actor::Cli, now).await?;
            println!("staff member {} is now {role}", member.email);
        }
        StaffCommand::ResetMfa { email } => {
            let member = find(&email).await?;
            if crate::staff::mfa::reset_mfa(&app.pool, member.id, &Actor::Cli, now).await? {
                println!(
                    "second factor of {} removed; their sessions ended (an admin sets up a new one at the next sign-in)",
                    member.email
                );
            } else {
                println!("staff member {} had no second factor", member.email);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
enum PartnersCommand {
    /// Refresh grants now and print a summary: those due (not refreshed for
    /// SAMGATE_KEEPALIVE_AFTER_DAYS), every live one (--all), or one partner's (--tenant).
    #[command(group(clap::ArgGroup::new("which").args(["all", "tenant"])))]
    Refresh {
        /// Every live grant, however recently refreshed.
        #[arg(long)]
        all: bool,
        /// Only this partner tenant id (whatever its state, unless offboarded).
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<uuid::Uuid>,
    },
    /// Offboard a partner: destroy its grant, revoke its invitations, audit what was removed.
    Offboard {
        /// The partner's tenant id.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: uuid::Uuid,
        /// First remove the CPV app's consent from each of its customers through Partner Center.
        #[arg(long)]
        remove_app_consents: bool,
    },
    /// Read a partner's customers (Partner Center) and GDAP relationships (Graph) again now.
    SyncCustomers {
        /// The partner's tenant id.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: uuid::Uuid,
    },
    /// List a partner's customers with their GDAP relationship, app consent and token outcome.
    Customers {
        /// The partner's tenant id.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: uuid::Uuid,
        /// Only customers needing attention (no or expired GDAP, consent missing or stale,
        /// token refused).
        #[arg(long)]
        needs_attention: bool,
    },
}

async fn partners(command: PartnersCommand) -> anyhow::Result<()> {
    use crate::jobs::keep_alive::{self, Selection};
    let app = command_app().await?;
    let now = app.clock.now();
    match command {
        PartnersCommand::Refresh { all, tenant } => {
            let selection = match (all, tenant) {
                (_, Some(tenant)) => Selection::Tenant(tenant),
                (true, None) => Selection::All,
                (false, None) => Selection::Due,
            };
            let summary = keep_alive::run(&app, now, selection).await?;
            println!("{summary}");
            if summary.needs_consent + summary.mfa_required > 0 {
                return Err(Incomplete(format!(
                    "{} partner(s) need their admin to consent again: send a re-consent \
                     invitation (samgate invitations create)",
                    summary.needs_consent + summary.mfa_required
                ))
                .into());
            }
            if summary.failed > 0 {
                return Err(Incomplete(format!(
                    "{} refresh(es) failed for a reason that may pass; they are retried by the \
                     next keep-alive cycle",
                    summary.failed
                ))
                .into());
            }
        }
        PartnersCommand::Offboard {
            tenant,
            remove_app_consents,
        } => {
            let report =
                crate::lifecycle::offboard(&app, tenant, &Actor::Cli, remove_app_consents).await?;
            println!("partner {tenant} offboarded");
            println!(
                "  grant deleted: {}, shared access tokens deleted: {}",
                report.grants_deleted, report.access_tokens_deleted
            );
            println!(
                "  app consents removed: {}, already absent: {}",
                report.app_consents_removed.len(),
                report.app_consents_absent.len()
            );
            println!(
                "  invitations revoked: {}",
                report.invitations_revoked.len()
            );
        }
        PartnersCommand::SyncCustomers { tenant } => {
            let partner = app
                .broker
                .partners()
                .by_tenant(tenant)
                .await
                .map_err(|e| anyhow::anyhow!("database: {e}"))?
                .ok_or_else(|| anyhow::anyhow!("no partner has tenant id {tenant}"))?;
            let report = crate::customers::sync(&app, &partner, &Actor::Cli).await?;
            println!(
                "{}: {} customers listed ({} new, {} removed, {} changed); GDAP {}",
                partner.display_name,
                report.listed,
                report.added,
                report.removed,
                report.changed,
                if report.gdap_readable {
                    format!(
                        "read ({} customers with relationships)",
                        report.gdap_customers
                    )
                } else {
                    "not readable (Graph refused; relationships unknown)".to_owned()
                }
            );
        }
        PartnersCommand::Customers {
            tenant,
            needs_attention,
        } => {
            let partner = db::partners::find_by_tenant(&app.pool, tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no partner has tenant id {tenant}"))?;
            let filter = if needs_attention {
                db::customers::CustomerFilter::NeedsAttention
            } else {
                db::customers::CustomerFilter::All
            };
            let mut after: Option<(String, uuid::Uuid)> = None;
            loop {
                let rows = db::customers::list(
                    &app.pool,
                    partner.id,
                    filter,
                    None,
                    after.as_ref().map(|(n, id)| (n.as_str(), *id)),
                    500,
                )
                .await?;
                let Some(last) = rows.last() else { break };
                after = Some((last.company_name.clone(), last.tenant_id));
                for row in &rows {
                    println!(
                        "{}  {:<40}  gdap={:<12} consent={:<7} token={}",
                        row.tenant_id,
                        row.company_name,
                        row.relationship.as_str(),
                        row.consent.as_str(),
                        row.token_error
                            .as_deref()
                            .unwrap_or(row.token_outcome.as_str())
                    );
                }
            }
        }
    }
    Ok(())
}

async fn worker() -> anyhow::Result<()> {
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

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Register an endpoint and print its signing secret (shown once).
    Add {
        /// Where events are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// An event type to send (repeat for several; default: all), e.g. partner.needs_consent.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// What the endpoint is.
        #[arg(long)]
        description: Option<String>,
    },
    /// List endpoints.
    List,
    /// Issue a new signing secret; the old one keeps signing for SAMGATE_WEBHOOK_SECRET_OVERLAP_HOURS.
    RotateSecret {
        /// The endpoint id (from `list`).
        endpoint: uuid::Uuid,
    },
    /// Stop sending to an endpoint; its queued deliveries wait until it is enabled again.
    Disable {
        /// The endpoint id (from `list`).
        endpoint: uuid::Uuid,
    },
    /// Send to a disabled endpoint again, queued deliveries first.
    Enable {
        /// The endpoint id (from `list`).
        endpoint: uuid::Uuid,
    },
    /// Recent deliveries with their last answer.
    Deliveries {
        /// Only this endpoint.
        #[arg(long)]
        endpoint: Option<uuid::Uuid>,
        /// Only pending, delivered or failed ones.
        #[arg(long)]
        status: Option<crate::domain::DeliveryStatus>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a delivery again now, with its original webhook-id.
    Replay {
        /// The delivery id (from `deliveries`).
        delivery: i64,
    },
}

async fn webhooks(command: WebhooksCommand) -> anyhow::Result<()> {
    let app = command_app().await?;
    let now = app.clock.now();
    match command {
        WebhooksCommand::Add {
            url,
            events,
            description,
        } => {
            let (endpoint, secret) = crate::webhooks::add_endpoint(
                &app,
                &url,
                &events,
                description.as_deref(),
                &Actor::Cli,
                now,
            )
            .await?;
            eprintln!("webhook endpoint {} for {}", endpoint.id, endpoint.url);
            // The secret alone on stdout; it is shown only now.
            println!("{}", secret.expose());
            eprintln!(
                "Verify signatures with this secret (Standard Webhooks); samgate keeps it sealed."
            );
        }
        WebhooksCommand::List => {
            for endpoint in db::webhooks::list_endpoints(&app.pool).await? {
                let state = if endpoint.disabled_at.is_some() {
                    "disabled"
                } else {
                    "enabled"
                };
                let events = if endpoint.event_types.is_empty() {
                    "all events".to_owned()
                } else {
                    endpoint.event_types.join(", ")
                };
                println!("{}  {state:8}  {}  {events}", endpoint.id, endpoint.url);
            }
        }
        WebhooksCommand::RotateSecret { endpoint } => {
            let secret = crate::webhooks::rotate_secret(&app, endpoint, &Actor::Cli, now).await?;
            eprintln!(
                "new secret for {endpoint}; the previous one signs too for {} hours",
                app.config.lifecycle.webhook_secret_overlap.whole_hours()
            );
            println!("{}", secret.expose());
        }
        WebhooksCommand::Disable { endpoint } => {
            switch_endpoint(&app, endpoint, false, now).await?
        }
        WebhooksCommand::Enable { endpoint } => switch_endpoint(&app, endpoint, true, now).await?,
        WebhooksCommand::Deliveries {
            endpoint,
            status,
            limit,
        } => {
            for d in db::webhooks::list_deliveries(&app.pool, endpoint, status, limit).await? {
                println!(
                    "{}  {:9}  {}  {}  attempts {}  last {}  {}",
                    d.id,
                    d.status.as_str(),
                    d.event_type,
                    d.message_id,
                    d.attempts,
                    d.last_status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    d.last_error.unwrap_or_default()
                );
            }
        }
        WebhooksCommand::Replay { delivery } => {
            crate::webhooks::replay(&app, delivery, &Actor::Cli, now).await?;
            println!("delivery {delivery} queued again");
        }
    }
    Ok(())
}

async fn switch_endpoint(
    app: &App,
    endpoint: uuid::Uuid,
    enabled: bool,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    let changed =
        crate::webhooks::set_endpoint_enabled(app, endpoint, enabled, &Actor::Cli, now).await?;
    match (changed, enabled) {
        (true, true) => println!("endpoint {endpoint} enabled; queued deliveries go out when due"),
        (true, false) => println!("endpoint {endpoint} disabled; its queued deliveries wait"),
        (false, true) => println!("endpoint {endpoint} was already enabled"),
        (false, false) => println!("endpoint {endpoint} was already disabled"),
    }
    Ok(())
}
