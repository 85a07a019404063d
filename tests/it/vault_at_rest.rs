//! Secrets at rest: a database dump after a consent holds no token, client secret, KEK or session
//! id; KEK rotation re-wraps every grant; a ring that lacks a stored KEK stops start-up.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ms_emulator::{DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_FABRIKAM_ADMIN};
use samgate::app::App;
use samgate::config::Config;
use samgate::onboarding::REFRESH_TOKEN_PURPOSE;
use samgate::vault::{KeyRing, SealContext, Vault, VaultError};
use secrecy::ExposeSecret;

use crate::harness::TestApp;
use crate::harness::microsoft::{AtConsent, Landing};

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key text of the test app's KEK 1 (`SAMGATE_KEKS` is `1:<base64>`).
fn kek_1(app: &TestApp) -> String {
    app.keks
        .strip_prefix("1:")
        .expect("the harness ring is `1:<key>`")
        .to_owned()
}

/// The environment the harness gives the app, with another key ring.
fn env_with_ring(app: &TestApp, keks: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", app.db.url()),
        ("SAMGATE_PUBLIC_URL", format!("{}/", app.address)),
        ("SAMGATE_AUTHORITY_URL", app.emulator.base_url()),
        ("SAMGATE_PARTNER_CENTER_URL", app.emulator.base_url()),
        ("SAMGATE_GRAPH_URL", app.emulator.graph_url()),
        ("SAMGATE_CLIENT_ID", ms_emulator::DEMO_CLIENT_ID.to_string()),
        (
            "SAMGATE_CLIENT_SECRET",
            ms_emulator::DEMO_CLIENT_SECRET.to_owned(),
        ),
        ("SAMGATE_CPV_NAME", "Northwind Control Panel".to_owned()),
        ("SAMGATE_KEKS", keks.to_owned()),
    ]
}

/// A second samgate `App` on the test's database, configured with `keks`.
fn app_with_ring(app: &TestApp, keks: &str) -> App {
    let env = env_with_ring(app, keks);
    let lookup = move |name: &str| {
        env.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    };
    let config = Config::from_lookup(&lookup).expect("configuration");
    App::build(config, app.pool.clone(), app.clock.clone()).expect("build app")
}

fn tenant_context(tenant: &str) -> SealContext<'_> {
    SealContext {
        purpose: REFRESH_TOKEN_PURPOSE.as_str(),
        row: tenant,
    }
}

/// (tenant id, sealed token, kek_id) of every grant, by tenant.
async fn grants(app: &TestApp) -> Vec<(String, Vec<u8>, i32)> {
    let rows: Vec<(uuid::Uuid, Vec<u8>, i32)> = sqlx::query_as(
        "SELECT p.tenant_id, g.sealed_refresh_token, g.kek_id \
         FROM grants g JOIN partners p ON p.id = g.partner_id ORDER BY p.tenant_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("grants");
    rows.into_iter()
        .map(|(tenant, sealed, kek)| (tenant.to_string(), sealed, kek))
        .collect()
}

/// `pg_dump` of the newest installed PostgreSQL, else the one on PATH.
fn pg_dump_binary() -> PathBuf {
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let binary = entry.path().join("bin/pg_dump");
            binary.is_file().then_some((version, binary))
        })
        .collect();
    versioned.sort();
    versioned
        .pop()
        .map_or_else(|| PathBuf::from("pg_dump"), |(_, binary)| binary)
}

/// The whole test database as SQL text (data and schema).
pub(crate) fn pg_dump(app: &TestApp) -> String {
    let binary = pg_dump_binary();
    let url = app.db.url();
    let run = |command: &mut Command| {
        command
            .arg("--no-owner")
            .arg(format!("--dbname={url}"))
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()))
    };
    let mut output = run(&mut Command::new(&binary));
    if !output.status.success() && nix::unistd::geteuid().is_root() {
        // The private cluster's socket may admit only its own (unprivileged) user.
        output = run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&binary));
    }
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the dump is UTF-8")
}

/// Signs in and consents like `consent_as`, and returns every session cookie value samgate set.
async fn consent_keeping_cookies(app: &TestApp, invitation: &str, upn: &str) -> Vec<String> {
    fn session_cookies(response: &reqwest::Response) -> Vec<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|cookie| cookie.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| name.contains("samgate_session"))
            .map(|(_, value)| value.to_owned())
            .filter(|value| !value.is_empty())
            .collect()
    }
    assert_eq!(app.get(invitation).await.status(), 200);
    let start = app
        .client
        .post(app.url(&format!("{invitation}/start")))
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 303);
    let mut cookies = session_cookies(&start);
    let authorize = start.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let Landing::Callback(callback) = app
        .sign_in_at_microsoft(&authorize, upn, AtConsent::Accept)
        .await
    else {
        panic!("sign-in stopped at Microsoft");
    };
    let callback = app.client.get(callback).send().await.expect("callback");
    cookies.extend(session_cookies(&callback));
    let done = app.follow_consent_done(callback).await;
    assert_eq!(done.status(), 200, "consent completes");
    cookies.extend(session_cookies(&done));
    assert!(!cookies.is_empty(), "samgate set a session cookie");
    cookies
}

#[tokio::test]
async fn a_database_dump_after_a_consent_holds_no_token_secret_key_or_session_id() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let cookies = consent_keeping_cookies(&app, &invitation, DEMO_CONTOSO_ADMIN).await;
    // The stored token works, so the grant really holds a live refresh token.
    let (tenant, sealed, _) = grants(&app).await.pop().expect("a grant");
    let stored = app
        .app
        .vault
        .open_string(&sealed, &tenant_context(&tenant))
        .expect("open");
    let refresh_tokens = app.microsoft().issued_refresh_tokens();
    assert!(refresh_tokens.contains(&stored.expose_secret().to_owned()));

    let dump = pg_dump(&app);
    // The dump really holds the data: the partner, and the sealed bytes as bytea hex.
    assert!(
        dump.contains(&DEMO_CONTOSO.to_string()),
        "partner row dumped"
    );
    assert!(dump.contains(&hex(&sealed)), "grant row dumped");

    let mut forbidden: Vec<(String, String)> = Vec::new();
    for (i, token) in refresh_tokens.iter().enumerate() {
        let prefix = &token.as_bytes()[..24];
        let prefix_text = std::str::from_utf8(prefix).expect("ascii token");
        forbidden.push((format!("refresh token {i}"), prefix_text.to_owned()));
        forbidden.push((format!("refresh token {i} as hex"), hex(prefix)));
        forbidden.push((
            format!("refresh token {i} as base64"),
            STANDARD.encode(prefix),
        ));
        forbidden.push((
            format!("refresh token {i} as base64url"),
            URL_SAFE_NO_PAD.encode(prefix),
        ));
    }
    forbidden.push((
        "client secret".to_owned(),
        ms_emulator::DEMO_CLIENT_SECRET.to_owned(),
    ));
    forbidden.push((
        "client secret as hex".to_owned(),
        hex(ms_emulator::DEMO_CLIENT_SECRET.as_bytes()),
    ));
    let kek = kek_1(&app);
    let kek_bytes = STANDARD.decode(&kek).expect("base64 KEK");
    forbidden.push(("KEK".to_owned(), kek.clone()));
    forbidden.push(("KEK as hex".to_owned(), hex(&kek_bytes)));
    for cookie in &cookies {
        forbidden.push(("session cookie".to_owned(), cookie.clone()));
    }
    for (what, text) in &forbidden {
        assert!(
            !dump.contains(text.as_str()),
            "the dump contains the {what}"
        );
    }
}

#[tokio::test]
async fn rotating_to_a_new_kek_rewraps_every_grant_so_the_old_kek_can_be_removed() {
    let app = TestApp::spawn().await;
    for (name, admin) in [
        ("Contoso", DEMO_CONTOSO_ADMIN),
        ("Fabrikam", DEMO_FABRIKAM_ADMIN),
    ] {
        let response = app.consent_as(&app.invite(name, None).await, admin).await;
        assert_eq!(response.status(), 200, "{name} consents");
    }
    let before = grants(&app).await;
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|(_, _, kek)| *kek == 1));
    let tokens: Vec<String> = before
        .iter()
        .map(|(tenant, sealed, _)| {
            app.app
                .vault
                .open_string(sealed, &tenant_context(tenant))
                .expect("open under KEK 1")
                .expose_secret()
                .to_owned()
        })
        .collect();

    let new_key = samgate::vault::generate_key();
    let rotating = app_with_ring(&app, &format!("1:{},2:{new_key}", kek_1(&app)));
    assert_eq!(
        rotating.vault.active_kek_id(),
        2,
        "the highest id is active"
    );
    let mut progress = Vec::new();
    let rewrapped = samgate::jobs::key_rotation::run(&rotating, 1, |done| progress.push(done))
        .await
        .expect("rotation");
    assert_eq!(rewrapped, 2);
    assert_eq!(progress, [1, 2], "progress is reported per batch");

    let after = grants(&app).await;
    let only_new = Vault::new(KeyRing::parse(&format!("2:{new_key}"), None).expect("ring"));
    let only_old = Vault::new(KeyRing::parse(&app.keks, None).expect("ring"));
    for ((tenant, sealed, kek), token) in after.iter().zip(&tokens) {
        assert_eq!(*kek, 2, "grant of {tenant} records KEK 2");
        assert_eq!(Vault::kek_id_of(sealed).expect("header"), 2);
        assert_eq!(
            only_new
                .open_string(sealed, &tenant_context(tenant))
                .expect("opens without KEK 1")
                .expose_secret(),
            token,
            "same refresh token after rotation"
        );
        assert!(matches!(
            only_old.open_string(sealed, &tenant_context(tenant)),
            Err(VaultError::UnknownKek(2))
        ));
    }
    // A ring without KEK 1 now starts.
    app_with_ring(&app, &format!("2:{new_key}"))
        .check_key_ring()
        .await
        .expect("KEK 1 is no longer needed");

    let again = samgate::jobs::key_rotation::run(&rotating, 1, |_| {})
        .await
        .expect("rotation again");
    assert_eq!(again, 0, "a second run has nothing to do");
    assert_eq!(grants(&app).await, after, "and changes nothing");
}

#[tokio::test]
async fn a_key_ring_without_the_kek_of_a_stored_grant_is_refused_with_a_clear_message() {
    let app = TestApp::spawn().await;
    let response = app
        .consent_as(&app.invite("Contoso", None).await, DEMO_CONTOSO_ADMIN)
        .await;
    assert_eq!(response.status(), 200);
    app.app
        .check_key_ring()
        .await
        .expect("the ring holding KEK 1 is fine");

    let other_key = samgate::vault::generate_key();
    let lacking = app_with_ring(&app, &format!("2:{other_key}"));
    let message = format!(
        "{:#}",
        lacking
            .check_key_ring()
            .await
            .expect_err("KEK 1 is missing")
    );
    assert!(message.contains("KEK 1"), "{message}");
    assert!(message.contains("SAMGATE_KEKS"), "{message}");
    assert!(!message.contains(&other_key), "{message}");
}

#[tokio::test]
async fn samgate_serve_exits_with_a_clear_message_when_the_ring_lacks_a_stored_kek() {
    let app = TestApp::spawn().await;
    let response = app
        .consent_as(&app.invite("Contoso", None).await, DEMO_CONTOSO_ADMIN)
        .await;
    assert_eq!(response.status(), 200);

    let other_key = samgate::vault::generate_key();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_samgate"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SAMGATE_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env_with_ring(&app, &format!("2:{other_key}")) {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start samgate serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll samgate") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("samgate serve kept running with a ring that lacks KEK 1");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "exit status {status}: {stderr}");
    assert!(stderr.contains("KEK 1"), "{stderr}");
    assert!(stderr.contains("SAMGATE_KEKS"), "{stderr}");
    assert!(!stderr.contains(&other_key), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
