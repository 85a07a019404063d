//! `samgate demo`: everything embedded — a private PostgreSQL (unless `DATABASE_URL` is set), the
//! Microsoft emulator with its demo world, seeded staff and an invitation — for trying samgate out.
//! Built only with the `demo` feature (on by default; production builds leave it out).

use std::path::PathBuf;

use super::serve::serve_app;
use super::*;
use crate::config::LogFormat;
use crate::domain::Actor;
use crate::local_pg::{LocalCluster, LocalPgError, ServerBinaries};

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
            let owner =
                std::fs::read_to_string(cluster.root().join("demo.lock")).unwrap_or_default();
            anyhow::bail!(
                "another `samgate demo` (pid {}) is already running on {}; stop it first (Ctrl-C), \
                 or point this one elsewhere with --dir",
                owner.trim(),
                cluster.root().display()
            );
        };
        cluster.write_owner(&mut lock).map_err(explain_local_pg)?;
        if cluster.ensure_initialized().map_err(explain_local_pg)? {
            println!(
                "samgate: created a private PostgreSQL cluster in {}",
                cluster.root().display()
            );
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

pub(super) async fn demo(dir: PathBuf, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let keks = demo_key_ring(&dir)?;
    let (database_url, local) = match std::env::var("DATABASE_URL") {
        Ok(url) => (SecretString::from(url), None),
        Err(_) => {
            let pg_dir = dir.clone();
            let local = tokio::task::spawn_blocking(move || DemoDatabase::start(&pg_dir)).await??;
            let admin = db::connect(local.cluster.connect_options("postgres"), 1).await?;
            db::ensure_database(&admin, "samgate").await?;
            admin.close().await;
            (
                SecretString::from(local.cluster.database_url("samgate")),
                Some(local),
            )
        }
    };
    let result = run_demo(database_url, listen, keks, &dir).await;
    if let Some(local) = local {
        println!("samgate: stopping the private PostgreSQL");
        tokio::task::spawn_blocking(move || local.cluster.stop(true)).await??;
    }
    result
}

/// The demo's staff login.
const DEMO_STAFF_EMAIL: &str = "admin@samgate.demo";

/// The demo admin's login: its password and its TOTP secret (base32). Admins need a second
/// factor, so the demo admin is enrolled at creation; both are kept (mode 0600) next to the demo
/// database so every run prints the same login.
struct DemoLogin {
    password: SecretString,
    totp_secret: SecretString,
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())?;
    Ok(())
}

/// Creates the demo's admin staff member once, enrolled in TOTP.
async fn demo_staff(app: &App, dir: &std::path::Path) -> anyhow::Result<DemoLogin> {
    let password_path = dir.join("demo-staff-password");
    let totp_path = dir.join("demo-staff-totp");
    let existing = db::staff::find_by_email(&app.pool, DEMO_STAFF_EMAIL).await?;
    if let (Ok(password), Ok(secret), Some(member)) = (
        std::fs::read_to_string(&password_path),
        std::fs::read_to_string(&totp_path),
        existing.as_ref(),
    ) && crate::staff::mfa::is_enabled(&app.pool, member.id).await?
    {
        return Ok(DemoLogin {
            password: SecretString::from(password.trim().to_owned()),
            totp_secret: SecretString::from(secret.trim().to_owned()),
        });
    }
    let (member, password) = match (existing, std::fs::read_to_string(&password_path)) {
        // A demo from before second factors: keep its admin, enrol it now.
        (Some(member), Ok(password)) => (member, SecretString::from(password.trim().to_owned())),
        _ => {
            let (member, password) = crate::staff::add_staff(
                &app.pool,
                crate::staff::NewStaffRequest {
                    email: DEMO_STAFF_EMAIL,
                    display_name: Some("Demo Admin"),
                    role: crate::staff::Role::Admin,
                    password: None,
                    actor: &Actor::Demo,
                },
                app.clock.now(),
            )
            .await?;
            write_private(&password_path, password.expose_secret())?;
            (member, password)
        }
    };
    crate::staff::mfa::reset_mfa(&app.pool, member.id, &Actor::Demo, app.clock.now()).await?;
    let (totp_secret, _) = crate::staff::mfa::enrol_now(
        &app.pool,
        &app.vault,
        member.id,
        &app.config.cpv_name,
        app.clock.now(),
    )
    .await?;
    write_private(&totp_path, totp_secret.expose_secret())?;
    Ok(DemoLogin {
        password,
        totp_secret,
    })
}

/// Writes the running demo's configuration to `{dir}/demo.env` (mode 0600), so one-shot commands
/// (`clients`, `invitations`, `keys`) can reach the demo with `SAMGATE_ENV_FILE`.
fn write_demo_env(
    dir: &std::path::Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<PathBuf> {
    let path = dir.join("demo.env");
    let mut text =
        String::from("# Written by `samgate demo` for the running demo; demo values only.\n");
    for name in [
        "DATABASE_URL",
        "SAMGATE_PUBLIC_URL",
        "SAMGATE_AUTHORITY_URL",
        "SAMGATE_PARTNER_CENTER_URL",
        "SAMGATE_GRAPH_URL",
        "SAMGATE_CLIENT_ID",
        "SAMGATE_CLIENT_SECRET",
        "SAMGATE_KEKS",
        "SAMGATE_CPV_NAME",
    ] {
        if let Some(value) = lookup(name) {
            text.push_str(&format!("{name}='{}'\n", value.replace('\'', "")));
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&path)?, text.as_bytes())?;
    Ok(path)
}

/// The demo's key-encryption key, kept next to its database so grants open after a restart.
fn demo_key_ring(dir: &std::path::Path) -> anyhow::Result<SecretString> {
    let path = dir.join("demo-keks");
    if !path.exists() {
        let line = format!("1:{}\n", crate::vault::generate_key());
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&path)?, line.as_bytes())?;
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

async fn run_demo(
    database_url: SecretString,
    listen: std::net::SocketAddr,
    keks: SecretString,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let pool = db::connect(database_options(&database_url)?, 10)
        .await
        .context("cannot connect to the demo database")?;
    db::migrate(&pool).await.context("migrations failed")?;
    let public_url = url::Url::parse(&format!("http://{listen}/"))?;
    let redirect_uri = format!("{public_url}oauth/callback");
    let cpv_name =
        std::env::var("SAMGATE_CPV_NAME").unwrap_or_else(|_| "Northwind Control Panel".into());
    // The demo world with its edge cases: a Contoso customer whose Conditional Access blocks
    // partner users and one without GDAP, so the customers page shows both.
    let mut seed = ms_emulator::Seed::demo(&redirect_uri).with_demo_edge_cases();
    // Microsoft's consent screen shows the app's registered name: the CPV's name.
    for app in &mut seed.apps {
        app.display_name = cpv_name.clone();
    }
    let emulator = ms_emulator::Emulator::start(seed)
        .await
        .context("cannot start the Microsoft emulator")?;
    let emulator_url = emulator.base_url();
    let graph_url = emulator.graph_url();
    let lookup = |name: &str| match name {
        "DATABASE_URL" => Some(database_url.expose_secret().to_owned()),
        "SAMGATE_PUBLIC_URL" => Some(public_url.to_string()),
        "SAMGATE_LISTEN" => Some(listen.to_string()),
        "SAMGATE_AUTHORITY_URL" | "SAMGATE_PARTNER_CENTER_URL" => Some(emulator_url.clone()),
        "SAMGATE_GRAPH_URL" => Some(graph_url.clone()),
        "SAMGATE_CLIENT_ID" => Some(ms_emulator::DEMO_CLIENT_ID.to_string()),
        "SAMGATE_CLIENT_SECRET" => Some(ms_emulator::DEMO_CLIENT_SECRET.to_owned()),
        "SAMGATE_KEKS" => Some(keks.expose_secret().to_owned()),
        "SAMGATE_KEKS_FILE" => None,
        "SAMGATE_CPV_NAME" => Some(cpv_name.clone()),
        other => std::env::var(other).ok(),
    };
    let config = Config::from_lookup(&lookup)?;
    let env_file = write_demo_env(dir, &lookup)?;
    let app = App::build(config.clone(), pool.clone(), Arc::new(SystemClock))?;
    let staff_login = demo_staff(&app, dir).await?;
    let (_, token) = onboarding::create_invitation(
        &app.pool,
        &onboarding::NewInvitationRequest {
            partner_name: "Contoso Partners",
            expected_tenant: None,
            login_hint: Some(ms_emulator::DEMO_CONTOSO_ADMIN),
            partner_id: None,
            ttl: config.invitation_ttl,
            created_by: &Actor::Demo,
        },
        app.clock.now(),
    )
    .await?;
    println!();
    println!("  samgate demo is starting on {public_url}");
    println!("    home page        {public_url}");
    println!("    readiness        {public_url}readyz");
    println!(
        "    Microsoft        {emulator_url} (emulator: identity platform, Partner Center, Graph)"
    );
    println!();
    println!("  Admin UI for CPV staff: {public_url}admin/login");
    println!(
        "    sign in as {DEMO_STAFF_EMAIL}, password {}",
        staff_login.password.expose_secret()
    );
    println!(
        "    then the code of an authenticator app holding the TOTP key {}",
        staff_login.totp_secret.expose_secret()
    );
    println!(
        "    (or `oathtool --totp -b {}`; lost it? `samgate staff reset-mfa {DEMO_STAFF_EMAIL}`)",
        staff_login.totp_secret.expose_secret()
    );
    println!();
    println!("  Consent as a partner admin: open this invitation link in a browser");
    println!("    {}", consent_link(&config, &token));
    println!(
        "    sign in as {} or {}, password {}",
        ms_emulator::DEMO_CONTOSO_ADMIN,
        ms_emulator::DEMO_FABRIKAM_ADMIN,
        ms_emulator::DEMO_PASSWORD
    );
    println!("    (the MFA page shows the one-time code to type)");
    println!();
    println!("  Backend services: create an API client and key, then call the proxy:");
    println!(
        "    SAMGATE_ENV_FILE={} cargo run -q -- clients create --name billing --all-partners",
        env_file.display()
    );
    println!(
        "    KEY=$(SAMGATE_ENV_FILE={} cargo run -q -- clients keys create --client billing)",
        env_file.display()
    );
    println!(
        "    curl -H \"Authorization: Bearer $KEY\" {public_url}api/v1/partners/{}/partner-center/v1/customers?size=10",
        ms_emulator::DEMO_CONTOSO
    );
    println!("    API reference: {public_url}api/docs");
    println!();
    println!(
        "  The emulator keeps its state in memory: consents from an earlier demo run were made"
    );
    println!("  with a previous emulator and will show as needing consent again.");
    println!("  Press Ctrl-C to stop (the private PostgreSQL stops too; its data is kept).");
    println!();
    let result = serve_app(app, pool).await;
    emulator.shutdown().await;
    result
}
