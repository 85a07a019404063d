//! The `samgate` binary run against a [`TestApp`]'s database, emulator and key ring: one-shot
//! commands (`samgate_command`, `run_cli`) and whole `samgate serve` processes ([`Instance`]) beside the
//! in-process app, as several production instances or an operator's CLI would be.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::TestApp;

/// The `samgate` binary with a cleared environment configured for `app`; add a subcommand.
pub fn samgate_command(app: &TestApp) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_samgate"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("DATABASE_URL", app.db.url())
        .env("SAMGATE_PUBLIC_URL", &app.address)
        .env("SAMGATE_AUTHORITY_URL", app.emulator.base_url())
        .env("SAMGATE_PARTNER_CENTER_URL", app.emulator.base_url())
        .env("SAMGATE_GRAPH_URL", app.emulator.graph_url())
        .env("SAMGATE_CLIENT_ID", ms_emulator::DEMO_CLIENT_ID.to_string())
        .env("SAMGATE_CLIENT_SECRET", ms_emulator::DEMO_CLIENT_SECRET)
        .env("SAMGATE_KEKS", &app.keks);
    command
}

/// Runs `samgate ARGS` for `app` (see [`samgate_command`]) to completion, as an operator would.
/// It blocks its thread: a test on the multi-threaded runtime wraps it in
/// `tokio::task::block_in_place` so the in-process app keeps serving (or uses [`run_cli_async`]).
pub fn run_cli(app: &TestApp, args: &[&str]) -> Output {
    samgate_command(app)
        .args(args)
        .output()
        .expect("run samgate")
}

/// [`run_cli`] with `env` added, on a blocking thread, for a test on any runtime flavour.
pub async fn run_cli_async(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = samgate_command(app);
    command.args(args).envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run samgate")
}

/// A `samgate serve` process sharing the test app's database, emulator and keys; killed (and
/// waited for) on drop.
pub struct Instance {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Instance {
    /// Starts one with `env` added, and waits until `/readyz` answers 200.
    pub async fn start(app: &TestApp, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut command = samgate_command(app);
        command
            .arg("serve")
            .env("SAMGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SAMGATE_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The child is killed and waited for in `Instance::kill`, also on drop.
        let child = command.spawn().expect("start samgate serve");
        let instance = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if reqwest::get(format!("{}/readyz", instance.url))
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return instance;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("instance on {} did not become ready", instance.url);
    }

    /// SIGKILL: no shutdown, no flush; its connections die with it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
