//! `ms-emulator`: runs the Microsoft emulator as a standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ms_emulator::{Emulator, Options, Seed};

/// Emulates login.microsoftonline.com (v2.0), Partner Center REST (/v1) and a Microsoft Graph
/// subset (/graph/v1.0) on one HTTP listener, with in-memory state and a controllable clock.
#[derive(Parser, Debug)]
#[command(name = "ms-emulator", version)]
struct Args {
    /// Port to listen on (0 = pick a free port; the URL is printed on stdout).
    #[arg(long, default_value_t = 0, env = "MS_EMULATOR_PORT")]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "MS_EMULATOR_HOST")]
    host: std::net::IpAddr,
    /// Seed file (JSON, or TOML when it ends in .toml). Without it the demo world is loaded, with
    /// two extra Contoso customers: one behind Conditional Access `block`, one without GDAP.
    #[arg(long, env = "MS_EMULATOR_SEED")]
    seed: Option<PathBuf>,
    /// Redirect URI registered on the demo CPV app (used only without --seed).
    #[arg(long, default_value = "http://localhost:8080/consent/callback")]
    demo_redirect_uri: String,
    /// Enable the HTTP control API under /_emulator/ (clock, revocation, faults, counters).
    #[arg(long)]
    control: bool,
    /// Base URL to advertise in tokens and metadata instead of http://HOST:PORT.
    #[arg(long)]
    public_base_url: Option<String>,
    /// Serve HTTPS with a self-signed certificate for localhost/127.0.0.1 (base URL https://localhost:PORT).
    #[arg(long)]
    tls: bool,
    /// Where --tls writes the certificate PEM for clients to trust.
    #[arg(long, default_value = "ms-emulator-cert.pem")]
    tls_cert_out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let seed = match &args.seed {
        Some(path) => Seed::from_file(path)?,
        None => Seed::demo(&args.demo_redirect_uri).with_demo_edge_cases(),
    };
    let options = Options {
        addr: SocketAddr::new(args.host, args.port),
        control_api: args.control,
        public_base_url: args.public_base_url.clone(),
        tls: args.tls,
        tls_cert_path: args.tls.then(|| args.tls_cert_out.clone()),
    };
    let emulator = Emulator::start_with(seed, options).await?;
    println!("{}", emulator.base_url());
    if args.tls {
        eprintln!("TLS certificate written to {}", args.tls_cert_out.display());
    }
    if args.seed.is_none() {
        eprintln!(
            "demo world: client_id {} secret {} users {} / {} password {}",
            ms_emulator::DEMO_CLIENT_ID,
            ms_emulator::DEMO_CLIENT_SECRET,
            ms_emulator::DEMO_CONTOSO_ADMIN,
            ms_emulator::DEMO_FABRIKAM_ADMIN,
            ms_emulator::DEMO_PASSWORD
        );
    }
    tokio::signal::ctrl_c().await?;
    emulator.shutdown().await;
    Ok(())
}
