//! The application object: everything a request or job needs, built once at start.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use crate::broker::Broker;
use crate::clock::Clock;
use crate::config::{ClientCredentialConfig, Config};
use crate::db;
use crate::identity::{ClientCredential, IdentityClient};
use crate::partner_center::PartnerCenterClient;
use crate::partners::PartnerDirectory;
use crate::proxy::{CallRecordQueue, CallRecorder, Proxy, ProxySettings};
use crate::vault::Vault;

/// Shared services of one samgate process.
#[derive(Debug)]
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// The PostgreSQL pool.
    pub pool: PgPool,
    /// The source of time.
    pub clock: Arc<dyn Clock>,
    /// Seals and opens secrets at rest.
    pub vault: Vault,
    /// The identity platform client of the CPV app.
    pub identity: Arc<IdentityClient>,
    /// Partners by tenant id, cached for the proxy's hot path.
    pub partners: PartnerDirectory,
    /// Access tokens for partners, cached and refreshed once.
    pub broker: Broker,
    /// samgate's own Partner Center calls.
    pub partner_center: PartnerCenterClient,
    /// samgate's own Graph calls (GDAP relationships).
    pub graph: crate::graph::GraphClient,
    /// The in-memory side of the customer directory (the proxy's customer gate).
    pub customers: crate::customers::CustomerDirectory,
    /// The outbound HTTP client (no redirects followed; extra CA if configured).
    pub http: reqwest::Client,
    /// Forwards API calls to Partner Center and Graph.
    pub proxy: Proxy,
    /// Verifies API keys (cached; see `spawn_background` for its listener and flush).
    pub api_keys: crate::api_keys::ApiKeyVerifier,
    /// Bounds the staff password checks (Argon2) running at once.
    pub argon2: crate::staff::Argon2Limit,
    /// The call-record queue until the background writer takes it.
    call_records: std::sync::Mutex<Option<CallRecordQueue>>,
}

impl App {
    /// Builds the services from configuration. Fails when a credential file is unreadable.
    pub fn build(config: Config, pool: PgPool, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        // Metrics are process-global: install the recorder before anything records.
        let _ = crate::telemetry::metrics();
        let http = outbound_client(&config)?;
        let credential = client_credential(&config.microsoft.credential)?;
        let identity = Arc::new(IdentityClient::new(
            http.clone(),
            config.microsoft.authority_url.clone(),
            config.microsoft.client_id,
            credential,
        ));
        let partner_center =
            PartnerCenterClient::new(http.clone(), config.microsoft.partner_center_url.clone());
        let vault = Vault::new(config.key_ring.clone());
        let partners = PartnerDirectory::new(pool.clone());
        let broker = Broker::new(
            pool.clone(),
            vault.clone(),
            identity.clone(),
            clock.clone(),
            partners.clone(),
            crate::broker::BrokerSettings {
                partner_center_resource: &config.microsoft.partner_center_resource,
                graph_resource: &config.microsoft.graph_resource,
                memory: crate::broker::RefusalMemory {
                    refusal: config.customers.refusal_memory,
                    transient: config.customers.transient_memory,
                },
            },
        );
        let graph =
            crate::graph::GraphClient::new(http.clone(), config.microsoft.graph_url.clone());
        let (recorder, queue) = CallRecorder::new(config.proxy.call_record_queue);
        let proxy = Proxy::new(
            proxy_client(&config)?,
            broker.clone(),
            ProxySettings {
                partner_center_url: config.microsoft.partner_center_url.clone(),
                graph_url: config.microsoft.graph_url.clone(),
                max_body_bytes: config.proxy.max_body_bytes,
                replayable_body_bytes: 256 * 1024,
                first_byte_timeout: config.proxy.first_byte_timeout,
                total_timeout: config.proxy.total_timeout,
                default_budget: config.proxy.default_budget,
                client_concurrency: config.proxy.client_concurrency,
                partner_concurrency: config.proxy.partner_concurrency,
            },
            recorder,
        )?;
        Ok(Self {
            proxy,
            call_records: std::sync::Mutex::new(Some(queue)),
            api_keys: crate::api_keys::ApiKeyVerifier::new(pool.clone()),
            argon2: crate::staff::Argon2Limit::for_this_machine(),
            config,
            pool,
            clock,
            vault,
            identity,
            broker,
            partners,
            partner_center,
            graph,
            customers: crate::customers::CustomerDirectory::default(),
            http,
        })
    }

    /// Takes the call-record queue (once) for the background writer.
    pub fn take_call_records(&self) -> Option<CallRecordQueue> {
        self.call_records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Refuses to run when a stored secret names a KEK the ring lacks (it could never be opened).
    pub async fn check_key_ring(&self) -> anyhow::Result<()> {
        let missing = keks_missing_from_ring(&self.pool, &self.vault).await?;
        if missing.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(
                "the key ring (SAMGATE_KEKS) lacks keys that stored secrets are sealed with: {}. {}",
                missing_keks_text(&missing),
                MISSING_KEK_FIX
            )
        }
    }
}

/// Stored secrets of one kind sealed under a KEK the ring does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingKek {
    /// What is sealed, e.g. `grants`.
    pub kind: String,
    /// The KEK id recorded with the rows.
    pub kek_id: i32,
    /// How many rows.
    pub count: i64,
}

/// What to do about a [`MissingKek`], for the start-up refusal and `samgate doctor` alike.
pub const MISSING_KEK_FIX: &str = "Add the missing key(s) back to the ring; remove a key only \
     after `samgate keys rotate`.";

/// Every kind of stored secret sealed under a KEK the ring lacks (such rows can never be opened).
pub async fn keks_missing_from_ring(
    pool: &PgPool,
    vault: &Vault,
) -> Result<Vec<MissingKek>, sqlx::Error> {
    let in_use = db::grants::sealed_by_kek(pool).await?;
    Ok(in_use
        .into_iter()
        .filter(|(_, id, _)| u32::try_from(*id).map_or(true, |id| !vault.has_kek(id)))
        .map(|(kind, kek_id, count)| MissingKek {
            kind,
            kek_id,
            count,
        })
        .collect())
}

/// `KEK 3 (12 grants), KEK 3 (1 webhook secrets)`.
pub fn missing_keks_text(missing: &[MissingKek]) -> String {
    missing
        .iter()
        .map(|m| format!("KEK {} ({} {})", m.kek_id, m.count, m.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The app's credential as the identity client uses it: the secret, or the certificate and key
/// loaded from their files (errors name the variables and paths, never the contents).
pub fn client_credential(config: &ClientCredentialConfig) -> anyhow::Result<ClientCredential> {
    Ok(match config {
        ClientCredentialConfig::Secret(secret) => ClientCredential::Secret(secret.clone()),
        ClientCredentialConfig::Certificate {
            certificate_file,
            key_file,
        } => ClientCredential::from_certificate_files(certificate_file, key_file)
            .map_err(anyhow::Error::msg)
            .context("SAMGATE_CLIENT_CERTIFICATE_FILE / SAMGATE_CLIENT_KEY_FILE")?,
    })
}

/// The outbound HTTP client every Microsoft call uses (no redirects, extra CA if configured).
pub fn outbound_client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        // Never follow redirects: an upstream must not send samgate (or a token) elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("samgate/", env!("CARGO_PKG_VERSION")));
    if let Some((path, pem)) = extra_ca_pem(config)? {
        let cert = reqwest::Certificate::from_pem(&pem).with_context(|| {
            format!(
                "SAMGATE_EXTRA_CA_FILE: {} is not a PEM certificate",
                path.display()
            )
        })?;
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder.build()?)
}

/// The proxy's client towards Partner Center and Graph (same trust as [`outbound_client`]).
pub fn proxy_client(config: &Config) -> anyhow::Result<crate::proxy::UpstreamClient> {
    let extra = extra_ca_pem(config)?;
    let pem = extra.as_ref().map(|(_, pem)| pem.as_slice());
    crate::proxy::UpstreamClient::new(pem).with_context(|| match &extra {
        Some((path, _)) => format!("SAMGATE_EXTRA_CA_FILE: {}", path.display()),
        None => "the proxy's TLS configuration".to_owned(),
    })
}

/// `SAMGATE_EXTRA_CA_FILE` and its PEM, if set.
fn extra_ca_pem(config: &Config) -> anyhow::Result<Option<(&std::path::Path, Vec<u8>)>> {
    let Some(path) = &config.microsoft.extra_ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(path)
        .with_context(|| format!("SAMGATE_EXTRA_CA_FILE: cannot read {}", path.display()))?;
    Ok(Some((path.as_path(), pem)))
}

/// The axum state: a cheap handle onto [`App`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
