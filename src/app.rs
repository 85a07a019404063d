//! The application object: everything a request or job needs, built once at start.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::{ClientCredentialConfig, Config};
use crate::db;
use crate::identity::{ClientCredential, IdentityClient};
use crate::partner_center::PartnerCenterClient;
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
    pub identity: IdentityClient,
    /// samgate's own Partner Center calls.
    pub partner_center: PartnerCenterClient,
    /// The outbound HTTP client (no redirects followed; extra CA if configured).
    pub http: reqwest::Client,
}

impl App {
    /// Builds the services from configuration. Fails when a credential file is unreadable.
    pub fn build(config: Config, pool: PgPool, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let http = outbound_client(&config)?;
        let credential = match &config.microsoft.credential {
            ClientCredentialConfig::Secret(secret) => ClientCredential::Secret(secret.clone()),
            ClientCredentialConfig::Certificate {
                certificate_file,
                key_file,
            } => ClientCredential::from_certificate_files(certificate_file, key_file)
                .map_err(anyhow::Error::msg)
                .context("SAMGATE_CLIENT_CERTIFICATE_FILE / SAMGATE_CLIENT_KEY_FILE")?,
        };
        let identity = IdentityClient::new(
            http.clone(),
            config.microsoft.authority_url.clone(),
            config.microsoft.client_id,
            credential,
        );
        let partner_center =
            PartnerCenterClient::new(http.clone(), config.microsoft.partner_center_url.clone());
        let vault = Vault::new(config.key_ring.clone());
        Ok(Self {
            config,
            pool,
            clock,
            vault,
            identity,
            partner_center,
            http,
        })
    }

    /// Refuses to run when a stored secret names a KEK the ring lacks (it could never be opened).
    pub async fn check_key_ring(&self) -> anyhow::Result<()> {
        let in_use = db::grants::count_by_kek(&self.pool).await?;
        let missing: Vec<String> = in_use
            .iter()
            .filter(|(id, _)| u32::try_from(*id).map_or(true, |id| !self.vault.has_kek(id)))
            .map(|(id, count)| format!("KEK {id} ({count} grants)"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(
                "the key ring (SAMGATE_KEKS) lacks keys that stored grants are sealed with: {}. \
                 Add the missing key(s) back to the ring; remove a key only after `samgate keys rotate`.",
                missing.join(", ")
            )
        }
    }
}

fn outbound_client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        // Never follow redirects: an upstream must not send samgate (or a token) elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("samgate/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.microsoft.extra_ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("SAMGATE_EXTRA_CA_FILE: cannot read {}", path.display()))?;
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

/// The axum state: a cheap handle onto [`App`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
