//! `samgate doctor` as an operator runs it: against the test app's database and the emulator,
//! then with one thing broken at a time, each time the line that says so and its fix.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ms_emulator::DEMO_CPV_TENANT;

use crate::cli::run_beside;
use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::instance::samgate_command;

/// `samgate doctor` configured for `app`, the CPV tenant included.
fn doctor(app: &TestApp) -> Command {
    let mut command = samgate_command(app);
    command
        .arg("doctor")
        .env("SAMGATE_CPV_TENANT", DEMO_CPV_TENANT.to_string());
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `command`, which must exit 1 (a check failed); its stdout and stderr.
async fn failing(command: &mut Command) -> (String, String) {
    let output = run_beside(command).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Fails when `secret` appears in either output.
fn assert_nowhere(secret: &str, stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "a secret was printed:\n{stdout}\n{stderr}"
    );
}

/// The report line that starts with `status` and names `check`.
fn line<'a>(stdout: &'a str, status: &str, check: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{status:<4} {check}:")))
        .unwrap_or_else(|| panic!("no `{status} {check}` line in:\n{stdout}"))
}

const CHECKS: [&str; 8] = [
    "configuration loads",
    "database reachable",
    "migrations applied",
    "key ring opens every stored secret",
    "app credential",
    "redirect URI",
    "Partner Center reachable",
    "Graph reachable",
];

#[tokio::test]
async fn doctor_reports_every_check_ok_in_order_against_the_emulator_and_exits_zero() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let output = run_beside(&mut doctor(&app)).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), CHECKS.len(), "{stdout}");
    for (found, check) in lines.iter().zip(CHECKS) {
        assert!(
            found.starts_with(&format!("OK   {check}:")),
            "`{check}` in order and OK:\n{stdout}"
        );
    }
    assert!(
        line(&stdout, "OK", "key ring opens every stored secret").contains("1 grants"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "OK", "redirect URI").contains(&format!("{}/oauth/callback ", app.address)),
        "the redirect URI exactly: {stdout}"
    );
    assert!(
        line(&stdout, "OK", "app credential").contains(&DEMO_CPV_TENANT.to_string()),
        "{stdout}"
    );
    for secret in [ms_emulator::DEMO_CLIENT_SECRET, app.keks.as_str()] {
        assert_nowhere(secret, &stdout, &stderr);
    }
}

#[tokio::test]
async fn a_wrong_client_secret_fails_the_credential_with_microsofts_advice_and_is_never_printed() {
    let app = TestApp::spawn().await;
    let secret = "doctor-wrong-secret-4f1c9e2b7a";
    let (stdout, stderr) = failing(doctor(&app).env("SAMGATE_CLIENT_SECRET", secret)).await;
    let credential = line(&stdout, "FAIL", "app credential");
    assert!(credential.contains("AADSTS7000215"), "{credential}");
    assert!(
        credential.contains("fix: Invalid client secret; SAMGATE_CLIENT_SECRET must hold"),
        "the advice of the AADSTS table: {credential}"
    );
    line(&stdout, "OK", "Partner Center reachable");
    assert!(stderr.contains("1 check(s) failed"), "{stderr}");
    assert_nowhere(secret, &stdout, &stderr);
}

#[tokio::test]
async fn a_key_ring_without_the_key_a_grant_was_sealed_with_fails_naming_the_key_id() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let other_key = samgate::vault::generate_key();

    let (stdout, stderr_lacking) =
        failing(doctor(&app).env("SAMGATE_KEKS", format!("2:{other_key}"))).await;
    let ring = line(&stdout, "FAIL", "key ring opens every stored secret");
    assert!(ring.contains("KEK 1 (1 grants)"), "{ring}");
    assert_nowhere(&other_key, &stdout, &stderr_lacking);
    assert!(ring.contains("adds KEK 1 back to SAMGATE_KEKS"), "{ring}");

    // The same id holding another key: the rows name a KEK the ring has, and do not open.
    let (stdout, stderr) =
        failing(doctor(&app).env("SAMGATE_KEKS", format!("1:{other_key}"))).await;
    let ring = line(&stdout, "FAIL", "key ring opens every stored secret");
    assert!(ring.contains("integrity check"), "{ring}");
    assert!(ring.contains("1 grants"), "{ring}");
    for secret in [other_key.as_str(), app.keks.as_str()] {
        assert_nowhere(secret, &stdout, &stderr);
    }
}

/// Runs `change` (with `$1` = `version`) on the test database, then doctor, which must fail its
/// migrations line and skip the key ring; returns that line.
async fn migrations_line_after(app: &TestApp, change: &str, version: i64) -> String {
    sqlx::query(change)
        .bind(version)
        .execute(&app.pool)
        .await
        .expect("change _sqlx_migrations");
    let (stdout, _) = failing(&mut doctor(app)).await;
    line(&stdout, "SKIP", "key ring opens every stored secret");
    line(&stdout, "FAIL", "migrations applied").to_owned()
}

#[tokio::test]
async fn a_tampered_or_unapplied_migration_fails_with_the_version_and_the_fix() {
    let app = TestApp::spawn().await;
    let latest: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&app.pool)
        .await
        .expect("latest migration");

    // A row tampered with first, then the latest row removed (as if never applied).
    for (change, said, fix) in [
        (
            "UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = $1",
            format!("checksum mismatch): {latest}"),
            "never edited",
        ),
        (
            "DELETE FROM _sqlx_migrations WHERE version = $1",
            format!("not applied: {latest}"),
            "samgate migrate",
        ),
    ] {
        let migrations = migrations_line_after(&app, change, latest).await;
        assert!(migrations.contains(&said), "{migrations}");
        assert!(migrations.contains(fix), "{migrations}");
    }
}

#[tokio::test]
async fn unreachable_partner_center_and_a_silent_graph_fail_with_fixes_within_the_timeout_in_json()
{
    let app = TestApp::spawn().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a silent port");
    let silent_port = silent.local_addr().expect("address").port();
    let started = Instant::now();
    let output = run_beside(
        doctor(&app)
            .args(["--json", "--timeout", "2"])
            .env(
                "SAMGATE_PARTNER_CENTER_URL",
                format!("http://127.0.0.1:{closed}"),
            )
            .env(
                "SAMGATE_GRAPH_URL",
                format!("http://127.0.0.1:{silent_port}"),
            ),
    )
    .await;
    let elapsed = started.elapsed();
    drop(silent);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let report: Vec<serde_json::Value> =
        serde_json::from_str(&stdout).expect("--json prints a JSON array");
    let finding = |check: &str| {
        report
            .iter()
            .find(|f| f["check"] == check)
            .unwrap_or_else(|| panic!("no {check} in {stdout}"))
    };
    for check in ["partner_center", "graph"] {
        let f = finding(check);
        assert_eq!(f["status"], "fail", "{f}");
        assert!(f["fix"].as_str().is_some_and(|fix| !fix.is_empty()), "{f}");
    }
    assert!(
        finding("partner_center")["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("SAMGATE_PARTNER_CENTER_URL")),
        "{stdout}"
    );
    for check in [
        "configuration",
        "database",
        "migrations",
        "key_ring",
        "app_credential",
    ] {
        let f = finding(check);
        assert_eq!(f["status"], "ok", "{f}");
        assert!(f["fix"].is_null(), "{f}");
        assert!(f["detail"].is_string(), "{f}");
    }
}

#[tokio::test]
async fn a_configuration_that_does_not_load_is_a_failing_line_pointing_at_the_sample() {
    let (stdout, stderr) = failing(
        Command::new(env!("CARGO_BIN_EXE_samgate"))
            .arg("doctor")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(env!("CARGO_TARGET_TMPDIR")),
    )
    .await;
    let configuration = line(&stdout, "FAIL", "configuration loads");
    assert!(
        configuration.contains("DATABASE_URL is not set"),
        "{configuration}"
    );
    assert!(configuration.contains(".env.sample"), "{configuration}");
    line(&stdout, "SKIP", "database reachable");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_certificate_credential_whose_key_does_not_load_fails_and_its_end_date_is_reported() {
    let app = TestApp::spawn().await;
    let certificate = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/identity/testdata/until-2051.crt"
    );
    let (stdout, stderr) = failing(
        doctor(&app)
            .env_remove("SAMGATE_CLIENT_SECRET")
            .env("SAMGATE_CLIENT_CERTIFICATE_FILE", certificate)
            .env("SAMGATE_CLIENT_KEY_FILE", "/nonexistent/samgate-app.key"),
    )
    .await;
    let credential = line(&stdout, "FAIL", "app credential");
    assert!(
        credential.contains("/nonexistent/samgate-app.key"),
        "{credential}"
    );
    assert!(
        credential.contains("SAMGATE_CLIENT_KEY_FILE"),
        "{credential}"
    );
    let end = line(&stdout, "OK", "app certificate");
    assert!(end.contains("2050-12-31 18:58 UTC"), "{end}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_database_fails_without_its_password_and_skips_what_needs_it() {
    let app = TestApp::spawn().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let password = "doctor-db-password-91c3";
    let (stdout, stderr) = failing(doctor(&app).env(
        "DATABASE_URL",
        format!("postgres://samgate:{password}@127.0.0.1:{closed}/samgate"),
    ))
    .await;
    let database = line(&stdout, "FAIL", "database reachable");
    assert!(database.contains("DATABASE_URL"), "{database}");
    line(&stdout, "SKIP", "migrations applied");
    line(&stdout, "SKIP", "key ring opens every stored secret");
    line(&stdout, "OK", "app credential");
    assert_nowhere(password, &stdout, &stderr);
}

#[tokio::test]
async fn without_the_cpv_tenant_the_credential_fails_asking_for_it_and_staff_sso_stands_in() {
    let app = TestApp::spawn().await;
    let (stdout, _) = failing(samgate_command(&app).arg("doctor")).await;
    let credential = line(&stdout, "FAIL", "app credential");
    assert!(credential.contains("SAMGATE_CPV_TENANT"), "{credential}");

    let output = run_beside(
        samgate_command(&app)
            .arg("doctor")
            .env("SAMGATE_STAFF_SSO_TENANT", DEMO_CPV_TENANT.to_string()),
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    line(&stdout, "OK", "app credential");
    let sso = line(&stdout, "OK", "staff sign-in redirect URI");
    assert!(
        sso.contains(&format!("{}/admin/login/sso/callback", app.address)),
        "{sso}"
    );
}
