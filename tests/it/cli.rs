//! The binary as a user runs it: `serve` refuses bad configuration, `demo` runs a private
//! PostgreSQL that survives restarts and refuses to run twice.

use crate::harness::DemoPartner::Contoso;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_samgate");

fn base_command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    command
}

#[test]
fn serve_names_every_missing_variable_and_exits_non_zero() {
    let output = base_command()
        .arg("serve")
        .output()
        .expect("run samgate serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
    assert!(stderr.contains("SAMGATE_PUBLIC_URL is not set"), "{stderr}");
    assert!(
        stderr.contains(".env.sample"),
        "a pointer to the documented variables: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_names_malformed_variables_without_echoing_secrets() {
    let output = base_command()
        .arg("serve")
        .env(
            "DATABASE_URL",
            "postgres://samgate:s3cret-db-password@localhost/samgate",
        )
        .env("SAMGATE_PUBLIC_URL", "ftp:/nowhere")
        .env("SAMGATE_LISTEN", "not-an-address")
        .output()
        .expect("run samgate serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SAMGATE_PUBLIC_URL"), "{stderr}");
    assert!(stderr.contains("SAMGATE_LISTEN is malformed"), "{stderr}");
    assert!(!stderr.contains("s3cret-db-password"), "{stderr}");
}

#[test]
fn help_explains_each_command() {
    let output = base_command()
        .arg("--help")
        .output()
        .expect("run samgate --help");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "demo", "migrate"] {
        assert!(stdout.contains(command), "{stdout}");
    }
}

struct Demo {
    child: Child,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_demo(dir: &PathBuf) -> Demo {
    let port = free_port();
    let child = base_command()
        .args(["demo", "--dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    Demo { child, port }
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http_probe::blocking_get(&format!("http://127.0.0.1:{port}/readyz")).ok() == Some(200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("demo did not become ready on port {port}");
}

mod http_probe {
    /// A tiny blocking GET for a test that runs without an async runtime.
    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(status)
    }
}

fn terminate(demo: &mut Demo) -> std::process::Output {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(demo.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let child = std::mem::replace(
        &mut demo.child,
        Command::new("true").spawn().expect("placeholder"),
    );
    child.wait_with_output().expect("demo exits")
}

#[test]
fn demo_runs_a_private_postgres_that_keeps_its_data_and_refuses_a_second_demo() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("demo-{}", uuid::Uuid::new_v4().simple()));
    let mut first = start_demo(&dir);
    wait_ready(first.port);

    // A second demo on the same directory says so instead of touching the cluster.
    let second = start_demo(&dir);
    let output = second.child.wait_with_output().expect("second demo exits");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    assert_eq!(
        http_probe::blocking_get(&format!("http://127.0.0.1:{}/readyz", first.port)).ok(),
        Some(200)
    );

    // Ctrl-C/SIGTERM stops samgate and its PostgreSQL cleanly.
    let output = terminate(&mut first);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !dir.join("pg/data/postmaster.pid").exists(),
        "PostgreSQL still running"
    );

    // A restart finds the same cluster, already migrated.
    let mut again = start_demo(&dir);
    wait_ready(again.port);
    let output = terminate(&mut again);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("created a private PostgreSQL cluster"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_generate_needs_no_configuration_and_prints_a_usable_key() {
    let output = base_command()
        .args(["keys", "generate"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        samgate::vault::KeyRing::parse(&format!("1:{key}"), None).is_ok(),
        "{key}"
    );
    let again = base_command()
        .args(["keys", "generate"])
        .output()
        .expect("run");
    assert_ne!(
        String::from_utf8_lossy(&again.stdout).trim(),
        key,
        "keys are random"
    );
}

/// Runs a command off the test's runtime thread (the emulator it talks to runs on that thread).
pub(crate) async fn run_beside(command: &mut Command) -> std::process::Output {
    let mut command = std::mem::replace(command, Command::new(BIN));
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run")
}

/// One-shot commands against the test app's database and emulator, as an operator runs them.
pub(crate) fn command_for(app: &crate::harness::TestApp) -> Command {
    let mut command = crate::harness::instance::samgate_command(app);
    command.env("RUST_LOG", "info");
    command
}

/// Scripts read stdout and the exit status: logs go to stderr (no colour codes when it is not a
/// terminal), and a refresh that left a partner needing its admin exits 3, not 0.
#[tokio::test]
async fn partners_refresh_keeps_stdout_for_output_and_exits_non_zero_when_a_partner_needs_its_admin()
 {
    let app = crate::harness::TestApp::spawn().await;
    app.consent_partner(Contoso).await;
    let tenant = ms_emulator::DEMO_CONTOSO.to_string();
    let output =
        run_beside(command_for(&app).args(["partners", "refresh", "--tenant", &tenant])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim(),
        "refreshed 1, needs_consent 0, mfa_required 0, failed 0",
        "stdout holds the summary only"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "no colour codes"
    );

    app.microsoft()
        .revoke_refresh_tokens(ms_emulator::DEMO_CONTOSO_ADMIN);
    let output =
        run_beside(command_for(&app).args(["partners", "refresh", "--tenant", &tenant])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(i32::from(samgate::cli::EXIT_INCOMPLETE)),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.starts_with("refreshed 0, needs_consent 1"),
        "{stdout}"
    );
    assert!(stderr.contains("re-consent invitation"), "{stderr}");
}

/// `--json` gives scripts machine-readable results: a client and a key created from the CLI,
/// and the key works at once.
#[tokio::test]
async fn json_output_of_client_and_key_commands_is_machine_readable_and_the_key_works() {
    let app = crate::harness::TestApp::spawn().await;
    app.consent_partner(Contoso).await;
    let created = run_beside(command_for(&app).args([
        "--json",
        "clients",
        "create",
        "--name",
        "scripted",
        "--all-partners",
        "--read-only",
    ]))
    .await;
    assert!(created.status.success(), "{created:?}");
    let client: serde_json::Value =
        serde_json::from_slice(&created.stdout).expect("clients create --json prints JSON");
    assert_eq!(client["name"], "scripted");
    let issued = run_beside(command_for(&app).args([
        "clients", "keys", "create", "--client", "scripted", "--json",
    ]))
    .await;
    assert!(issued.status.success(), "{issued:?}");
    let key: serde_json::Value =
        serde_json::from_slice(&issued.stdout).expect("keys create --json prints JSON");
    let secret = key["key"].as_str().expect("the key");
    assert!(secret.starts_with("sgk_"));
    let listed = run_beside(command_for(&app).args(["--json", "clients", "list"])).await;
    let clients: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON list");
    assert!(
        clients.as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["name"] == "scripted" && c["read_only"] == true)),
        "{clients}"
    );
    let response = app
        .client
        .get(app.url(&format!("/api/v1/partners/{}", ms_emulator::DEMO_CONTOSO)))
        .bearer_auth(secret)
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);

    // In plain text the key is the one line on stdout, for a pipe; stderr carries its id, public
    // prefix and the advice, and the key never shows again (listings name keys by id and prefix).
    let plain =
        run_beside(command_for(&app).args(["clients", "keys", "create", "--client", "scripted"]))
            .await;
    assert!(plain.status.success(), "{plain:?}");
    let stdout = String::from_utf8_lossy(&plain.stdout);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    let issued_key = stdout.trim();
    assert!(
        issued_key.starts_with("sgk_") && !issued_key.contains('\n'),
        "only the key on stdout: {stdout}"
    );
    assert!(!stderr.contains(issued_key), "{stderr}");
    assert!(stderr.contains("Authorization: Bearer <key>"), "{stderr}");
    let keys =
        run_beside(command_for(&app).args(["clients", "keys", "list", "--client", "scripted"]))
            .await;
    let listing = String::from_utf8_lossy(&keys.stdout);
    assert!(keys.status.success(), "{keys:?}");
    assert!(
        !listing.contains(issued_key) && !listing.contains(secret),
        "a listing never shows a key: {listing}"
    );
}
