//! An in-memory emulator of the Microsoft identity platform, Partner Center REST and a Microsoft
//! Graph subset, faithful on the wire, on one axum listener (plus an optional control API).
//! Start one with [`Emulator::start`], script it through [`Control`]. See README.md.

/// The emulator clock (real time plus an adjustable offset).
pub mod clock;
/// `Control`: scripting handle (clock, revocation, MFA, faults, counters).
pub mod control;
/// The HTTP control API under `/_emulator/…`.
mod control_api;
/// Faults, per-route counters and request recording.
mod faults;
/// Microsoft Graph subset under `/graph/v1.0/…`.
mod graph;
/// Identity platform: discovery, JWKS, authorize pages, token endpoint, token minting.
pub mod identity;
/// Signing keys and JWKS.
mod keys;
/// Partner Center REST under `/v1/…`.
mod partner_center;
/// The seed format and the demo world.
pub mod seed;
/// The in-memory world and shared state.
mod state;
/// Optional HTTPS with a self-signed certificate.
mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use control::{Control, Fault, RouteMatch};
pub use seed::{
    AppSeed, ConsentSeed, CustomerOptions, CustomerPolicy, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
    DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_CONTOSO_CUSTOMER_BLOCKED,
    DEMO_CONTOSO_CUSTOMER_WITHOUT_GDAP, DEMO_CPV_TENANT, DEMO_FABRIKAM, DEMO_FABRIKAM_ADMIN,
    DEMO_PASSWORD, MfaState, MissingConsentError, RelationshipSeed, RelationshipStatus, SecretSeed,
    Seed, SubscriptionSeed, TenantSeed, UserSeed,
};
pub use state::RecordedRequest;

use state::{Counters, Settings, Shared, World};

/// How to run an emulator.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to bind; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Mount the HTTP control API under `/_emulator/…`.
    pub control_api: bool,
    /// Base URL to advertise instead of `http://{bound address}` (e.g. behind a proxy).
    pub public_base_url: Option<String>,
    /// Serve HTTPS with a self-signed certificate for `localhost`/`127.0.0.1`; the base URL becomes
    /// `https://localhost:PORT`.
    pub tls: bool,
    /// Where to write the certificate PEM when `tls` is on (clients add it as a trusted root).
    pub tls_cert_path: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            control_api: true,
            public_base_url: None,
            tls: false,
            tls_cert_path: None,
        }
    }
}

/// A running emulator.
pub struct Emulator {
    base_url: String,
    addr: SocketAddr,
    control: Control,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    tls_cert_pem: Option<String>,
}

impl Emulator {
    /// Binds `127.0.0.1:0` with the control API enabled.
    pub async fn start(seed: Seed) -> anyhow::Result<Emulator> {
        Emulator::start_with(seed, Options::default()).await
    }

    /// Starts with explicit options.
    pub async fn start_with(seed: Seed, options: Options) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let tls = if options.tls {
            Some(tls::self_signed()?)
        } else {
            None
        };
        let default_url = match &tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let base_url = options
            .public_base_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or(default_url);
        let shared = Arc::new(build_state(&seed, base_url.clone()).await?);
        let app = router(shared.clone(), options.control_api);
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = rx.await;
        };
        let tls_cert_pem = tls.as_ref().map(|t| t.cert_pem.clone());
        if let (Some(pem), Some(path)) = (&tls_cert_pem, &options.tls_cert_path) {
            std::fs::write(path, pem)?;
        }
        let task = match tls {
            Some(t) => {
                let listener = tls::TlsListener {
                    tcp: listener,
                    acceptor: t.acceptor,
                };
                tokio::spawn(async move {
                    if let Err(err) = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                    {
                        tracing::error!(error = %err, "emulator server stopped");
                    }
                })
            }
            None => tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %err, "emulator server stopped");
                }
            }),
        };
        Ok(Emulator {
            base_url,
            addr,
            control: Control { shared },
            shutdown: Some(tx),
            task: Some(task),
            tls_cert_pem,
        })
    }

    /// PEM of the self-signed certificate when started with `tls`.
    pub fn tls_certificate_pem(&self) -> Option<String> {
        self.tls_cert_pem.clone()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graph's base URL: `{base_url}/graph` (append `/v1.0/...`).
    pub fn graph_url(&self) -> String {
        format!("{}/graph", self.base_url)
    }

    /// A cheap handle onto the shared state.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops the listener and waits for in-flight requests (at most 5 seconds).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn build_state(seed: &Seed, base_url: String) -> anyhow::Result<Shared> {
    let clock = clock::Clock::default();
    let world = World::from_seed(seed, clock.now())?;
    // RSA keygen is CPU-bound; keep it off the async workers.
    let key = tokio::task::spawn_blocking(keys::SigningKey::generate).await??;
    Ok(Shared {
        base_url,
        clock,
        keys: RwLock::new(keys::KeySet { keys: vec![key] }),
        world: Mutex::new(world),
        faults: Mutex::new(Vec::new()),
        counters: Mutex::new(Counters::default()),
        recorded: Mutex::new(Vec::new()),
        settings: Mutex::new(Settings::default()),
    })
}

/// Every route on one screen: identity, Partner Center, Graph, and (optionally) the control API.
fn router(shared: Arc<Shared>, control_api: bool) -> Router {
    let mut app = Router::new()
        .merge(partner_center::router())
        .merge(graph::router())
        .merge(identity::router());
    if control_api {
        app = app.merge(control_api::router());
    }
    app.layer(axum::middleware::from_fn_with_state(
        shared.clone(),
        faults::fault_layer,
    ))
    .with_state(shared)
}
