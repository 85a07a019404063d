//! The token broker: access tokens per (partner, authority tenant, resource), cached in memory and
//! shared through PostgreSQL by every instance. A refresh happens once per key however many
//! requests wait (a per-key lock in the process, the grant's row lock across instances, then a
//! re-read), and the rotated refresh token is sealed and committed before the new access token is
//! handed out. Consent-class failures move the partner to `needs_consent`/`mfa_required`.

mod directory;

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use secrecy::SecretString;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::RwLock;
use uuid::Uuid;

pub use directory::{PartnerDirectory, PartnerInfo};

use crate::clock::Clock;
use crate::db;
use crate::identity::{Classified, ErrorClass, IdentityClient, IdentityError};
use crate::onboarding::REFRESH_TOKEN_PURPOSE;
use crate::vault::{SealContext, Vault};

/// The vault purpose of a cached access token; the row is `partner/authority/resource`.
pub const ACCESS_TOKEN_PURPOSE: &str = "grant.access_token";
/// A token this close to expiry is refreshed rather than handed out.
const EXPIRY_MARGIN: time::Duration = time::Duration::minutes(5);
/// Attempts for a transient token-endpoint failure (first try included).
const TRANSIENT_ATTEMPTS: u32 = 3;

/// The Microsoft API a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Partner Center REST.
    PartnerCenter,
    /// Microsoft Graph.
    Graph,
}

impl Resource {
    /// Stable name (database key, logs, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PartnerCenter => "partner_center",
            Self::Graph => "graph",
        }
    }
}

/// A cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// samgate's partner id.
    pub partner_id: Uuid,
    /// The partner's tenant (vault row binding of its refresh token).
    pub partner_tenant: Uuid,
    /// Where the token is minted: the partner's tenant or one of its customers'.
    pub authority_tenant: Uuid,
    /// For which API.
    pub resource: Resource,
}

/// An access token and its expiry. `Debug` shows no token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub secret: SecretString,
    /// When Microsoft says it expires.
    pub expires_at: OffsetDateTime,
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The partner must consent again (refresh token dead, revoked, expired…).
    #[error("partner consent required ({})", code_text(.0))]
    ConsentRequired(Option<Classified>),
    /// The partner's account must satisfy MFA again.
    #[error("partner MFA required ({})", code_text(.0))]
    MfaRequired(Option<Classified>),
    /// The CPV app is not consented in the customer tenant (AADSTS90099).
    #[error("app not consented in the customer tenant")]
    CustomerConsentMissing(Classified),
    /// The partner has no access to that customer tenant (no GDAP relationship, AADSTS50020…).
    #[error("partner has no access to the customer tenant")]
    CustomerAccessDenied(Classified),
    /// Microsoft throttled the token endpoint.
    #[error("token endpoint throttled")]
    Throttled,
    /// Microsoft or the database failed in a way that may pass.
    #[error("token unavailable: {0}")]
    Unavailable(String),
    /// The CPV app's own configuration was refused (secret expired, wrong client…).
    #[error("the CPV app was refused ({})", .0.code.map(|c| c.to_string()).unwrap_or_default())]
    AppConfiguration(Classified),
    /// The partner has no grant.
    #[error("partner has no grant")]
    NoGrant,
}

fn code_text(c: &Option<Classified>) -> String {
    c.as_ref()
        .and_then(|c| c.code)
        .map(|code| format!("AADSTS{code}"))
        .unwrap_or_else(|| "earlier failure".into())
}

type Slot = Arc<RwLock<Option<AccessToken>>>;

/// The token broker of one samgate process.
#[derive(Clone)]
pub struct Broker {
    pool: PgPool,
    vault: Vault,
    identity: Arc<IdentityClient>,
    clock: Arc<dyn Clock>,
    partners: PartnerDirectory,
    slots: Cache<TokenKey, Slot>,
    partner_center_scope: String,
    graph_scope: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("cached_keys", &self.slots.entry_count())
            .finish()
    }
}

impl Broker {
    /// A broker over the shared services.
    pub fn new(
        pool: PgPool,
        vault: Vault,
        identity: Arc<IdentityClient>,
        clock: Arc<dyn Clock>,
        partner_center_resource: &str,
        graph_resource: &str,
    ) -> Self {
        Self {
            partners: PartnerDirectory::new(pool.clone()),
            pool,
            vault,
            identity,
            clock,
            // Idle keys go away; a busy key's slot lives as long as it is used.
            slots: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(2 * 3600))
                .build(),
            partner_center_scope: format!(
                "{}/.default",
                partner_center_resource.trim_end_matches('/')
            ),
            graph_scope: format!("{}/.default", graph_resource.trim_end_matches('/')),
        }
    }

    /// The partner directory (cached partner lookups by tenant id).
    pub fn partners(&self) -> &PartnerDirectory {
        &self.partners
    }

    fn scope(&self, resource: Resource) -> &str {
        match resource {
            Resource::PartnerCenter => &self.partner_center_scope,
            Resource::Graph => &self.graph_scope,
        }
    }

    fn is_fresh(&self, token: &AccessToken) -> bool {
        self.clock.now() < token.expires_at - EXPIRY_MARGIN
    }

    /// An access token for `key`: from memory, from another instance's refresh, or refreshed now.
    pub async fn access_token(&self, key: TokenKey) -> Result<AccessToken, BrokerError> {
        let slot = self
            .slots
            .get_with(key, async { Arc::new(RwLock::new(None)) })
            .await;
        if let Some(token) = slot.read().await.as_ref()
            && self.is_fresh(token)
        {
            metrics::counter!("samgate_token_cache_total", "result" => "hit").increment(1);
            return Ok(token.clone());
        }
        metrics::counter!("samgate_token_cache_total", "result" => "miss").increment(1);
        let mut guard = slot.write().await;
        // Whoever held the lock before us may have refreshed already.
        if let Some(token) = guard.as_ref()
            && self.is_fresh(token)
        {
            return Ok(token.clone());
        }
        let token = self.obtain(key).await?;
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Drops a token an upstream refused (`401 invalid_token`), here and for other instances.
    pub async fn forget(&self, key: TokenKey) {
        if let Some(slot) = self.slots.get(&key).await {
            *slot.write().await = None;
        }
        let _ = db::access_tokens::delete(
            &self.pool,
            key.partner_id,
            key.authority_tenant,
            key.resource.as_str(),
        )
        .await;
    }

    fn access_token_row(key: &TokenKey) -> String {
        format!(
            "{}/{}/{}",
            key.partner_id,
            key.authority_tenant,
            key.resource.as_str()
        )
    }

    fn open_shared(
        &self,
        key: &TokenKey,
        stored: db::access_tokens::StoredAccessToken,
    ) -> Option<AccessToken> {
        let row = Self::access_token_row(key);
        let secret = self
            .vault
            .open_string(
                &stored.sealed_token,
                &SealContext::new(ACCESS_TOKEN_PURPOSE, &row),
            )
            .ok()?;
        let token = AccessToken {
            secret,
            expires_at: stored.expires_at,
        };
        self.is_fresh(&token).then_some(token)
    }

    async fn obtain(&self, key: TokenKey) -> Result<AccessToken, BrokerError> {
        let db_err = |e: sqlx::Error| BrokerError::Unavailable(format!("database: {e}"));
        // Another instance may hold a fresh token already: no lock needed to read it.
        if let Some(stored) = db::access_tokens::find(
            &self.pool,
            key.partner_id,
            key.authority_tenant,
            key.resource.as_str(),
        )
        .await
        .map_err(db_err)?
            && let Some(token) = self.open_shared(&key, stored)
        {
            return Ok(token);
        }
        self.refresh(key, false).await
    }

    /// Redeems the partner's refresh token for `key` under the grant's row lock. With
    /// `force`, skips the shared-token shortcut (keep-alive wants the refresh itself).
    async fn refresh(&self, key: TokenKey, force: bool) -> Result<AccessToken, BrokerError> {
        let db_err = |e: sqlx::Error| BrokerError::Unavailable(format!("database: {e}"));
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let grant = db::grants::lock(&mut *tx, key.partner_id)
            .await
            .map_err(db_err)?
            .ok_or(BrokerError::NoGrant)?;
        // Re-read under the lock: the instance that held it before us may have refreshed.
        if !force
            && let Some(stored) = db::access_tokens::find(
                &mut *tx,
                key.partner_id,
                key.authority_tenant,
                key.resource.as_str(),
            )
            .await
            .map_err(db_err)?
            && let Some(token) = self.open_shared(&key, stored)
        {
            tx.commit().await.map_err(db_err)?;
            return Ok(token);
        }
        let partner_tenant = key.partner_tenant.to_string();
        let refresh_token = self
            .vault
            .open_string(
                &grant.sealed_refresh_token,
                &SealContext::new(REFRESH_TOKEN_PURPOSE, &partner_tenant),
            )
            .map_err(|e| BrokerError::Unavailable(format!("grant cannot be opened: {e}")))?;
        let authority = key.authority_tenant.to_string();
        let result = self
            .redeem_with_retry(&authority, &refresh_token, self.scope(key.resource))
            .await;
        let (outcome, class) = match &result {
            Ok(_) => ("ok", "none"),
            Err(err) => ("error", err.class().as_str()),
        };
        metrics::counter!("samgate_token_refreshes_total", "outcome" => outcome, "class" => class)
            .increment(1);
        drop(refresh_token);
        let now = self.clock.now();
        match result {
            Ok(response) => {
                if let Some(rotated) = &response.refresh_token {
                    let sealed = self
                        .vault
                        .seal_str(
                            rotated,
                            &SealContext::new(REFRESH_TOKEN_PURPOSE, &partner_tenant),
                        )
                        .map_err(|e| BrokerError::Unavailable(format!("sealing failed: {e}")))?;
                    let kek = kek_of(&sealed)?;
                    let replaced = db::grants::rotate(
                        &mut *tx,
                        key.partner_id,
                        grant.version,
                        &sealed,
                        kek,
                        now,
                    )
                    .await
                    .map_err(db_err)?;
                    if !replaced {
                        return Err(BrokerError::Unavailable(
                            "grant changed during refresh".into(),
                        ));
                    }
                }
                let expires_at =
                    now + time::Duration::seconds(response.expires_in.min(86_400) as i64);
                let row = Self::access_token_row(&key);
                let sealed = self
                    .vault
                    .seal_str(
                        &response.access_token,
                        &SealContext::new(ACCESS_TOKEN_PURPOSE, &row),
                    )
                    .map_err(|e| BrokerError::Unavailable(format!("sealing failed: {e}")))?;
                db::access_tokens::store(
                    &mut *tx,
                    key.partner_id,
                    key.authority_tenant,
                    key.resource.as_str(),
                    &sealed,
                    kek_of(&sealed)?,
                    expires_at,
                )
                .await
                .map_err(db_err)?;
                // The rotated refresh token is durable before anyone uses the new access token.
                tx.commit().await.map_err(db_err)?;
                if !matches!(
                    self.partners
                        .cached_status(key.partner_tenant)
                        .await
                        .as_deref(),
                    Some("healthy") | None
                ) {
                    self.mark_recovered(key).await;
                }
                Ok(AccessToken {
                    secret: response.access_token,
                    expires_at,
                })
            }
            Err(error) => {
                let outcome = self.classify(&key, error);
                if let Some((status, classified)) = outcome.partner_state() {
                    self.record_partner_failure(&mut tx, key, status, classified, now)
                        .await
                        .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    self.partners.invalidate(key.partner_tenant).await;
                } else if matches!(
                    outcome,
                    BrokerError::Unavailable(_) | BrokerError::Throttled
                ) {
                    // Evidence for the health state machine: counted (and announced) with the
                    // grant still locked; enough in a row make the partner `degraded`.
                    let degraded = crate::lifecycle::health::record_transient_failure(
                        &mut tx,
                        key.partner_id,
                        key.partner_tenant,
                        &outcome.to_string(),
                        now,
                    )
                    .await
                    .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    if degraded {
                        self.partners.invalidate(key.partner_tenant).await;
                    }
                }
                Err(outcome)
            }
        }
    }

    /// Refreshes the partner's grant now (keep-alive, "refresh now"), returning the outcome.
    pub async fn refresh_grant(&self, partner: &PartnerInfo) -> Result<(), BrokerError> {
        let key = TokenKey {
            partner_id: partner.id,
            partner_tenant: partner.tenant_id,
            authority_tenant: partner.tenant_id,
            resource: Resource::PartnerCenter,
        };
        // Keep-alive refreshes grants nobody is using: update a cached token only if there is one,
        // so a sweep over every partner does not fill memory with tokens (BENCHMARKS.md).
        match self.slots.get(&key).await {
            Some(slot) => {
                let mut guard = slot.write().await;
                let token = self.refresh(key, true).await?;
                *guard = Some(token);
            }
            None => {
                self.refresh(key, true).await?;
            }
        }
        Ok(())
    }

    async fn redeem_with_retry(
        &self,
        authority: &str,
        refresh_token: &SecretString,
        scope: &str,
    ) -> Result<crate::identity::TokenResponse, IdentityError> {
        let mut attempt = 1;
        loop {
            match self.identity.refresh(authority, refresh_token, scope).await {
                Err(err)
                    if err.class() == ErrorClass::Transient && attempt < TRANSIENT_ATTEMPTS =>
                {
                    tokio::time::sleep(jittered_backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn classify(&self, key: &TokenKey, error: IdentityError) -> BrokerError {
        let classified = match error {
            IdentityError::Refused(classified) => classified,
            IdentityError::Unreachable(detail) | IdentityError::Protocol(detail) => {
                return BrokerError::Unavailable(detail);
            }
            IdentityError::IdToken(err) => return BrokerError::Unavailable(err.to_string()),
        };
        let in_customer = key.authority_tenant != key.partner_tenant;
        match classified.class {
            ErrorClass::CustomerConsentMissing => BrokerError::CustomerConsentMissing(classified),
            ErrorClass::PartnerConfiguration | ErrorClass::AccessDenied if in_customer => {
                BrokerError::CustomerAccessDenied(classified)
            }
            ErrorClass::MfaRequired => BrokerError::MfaRequired(Some(classified)),
            class if class.needs_reconsent() => BrokerError::ConsentRequired(Some(classified)),
            ErrorClass::Throttled => BrokerError::Throttled,
            ErrorClass::Transient => BrokerError::Unavailable(classified.error.clone()),
            ErrorClass::AppConfiguration => BrokerError::AppConfiguration(classified),
            _ => BrokerError::Unavailable(format!(
                "token endpoint refused: {} {:?}",
                classified.error, classified.code
            )),
        }
    }

    async fn record_partner_failure(
        &self,
        tx: &mut sqlx::PgConnection,
        key: TokenKey,
        status: &str,
        classified: &Classified,
        now: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        let code = classified.code.map(|c| c.to_string());
        // Announced once per change of state, with the change (webhook outbox).
        crate::lifecycle::health::announce_refusal(
            &mut *tx,
            key.partner_id,
            key.partner_tenant,
            status,
            classified,
            now,
        )
        .await?;
        db::partners::set_status(
            &mut *tx,
            key.partner_id,
            status,
            Some(classified.advice),
            code.as_deref(),
            now,
        )
        .await?;
        db::grants::record_error(&mut *tx, key.partner_id, code.as_deref(), now).await?;
        db::access_tokens::delete_for_partner(&mut *tx, key.partner_id).await?;
        db::audit::record(
            &mut *tx,
            "system",
            "grant.refresh_failed",
            Some(key.partner_tenant),
            serde_json::json!({
                "status": status,
                "error": classified.error,
                "code": classified.code,
                "class": classified.class.as_str(),
                "authority_tenant": key.authority_tenant,
            }),
            now,
        )
        .await
    }

    async fn mark_recovered(&self, key: TokenKey) {
        let now = self.clock.now();
        let Ok(mut tx) = self.pool.begin().await else {
            return;
        };
        // degraded → healthy with its audit record and `partner.recovered`, all or nothing.
        if crate::lifecycle::health::record_success(
            &mut tx,
            key.partner_id,
            key.partner_tenant,
            now,
        )
        .await
        .is_err()
        {
            return;
        }
        let _ = tx.commit().await;
        self.partners.invalidate(key.partner_tenant).await;
    }
}

impl BrokerError {
    /// The partner status this failure puts the partner in, if it is partner-level.
    fn partner_state(&self) -> Option<(&'static str, &Classified)> {
        match self {
            Self::ConsentRequired(Some(c)) => Some(("needs_consent", c)),
            Self::MfaRequired(Some(c)) => Some(("mfa_required", c)),
            _ => None,
        }
    }
}

fn kek_of(sealed: &[u8]) -> Result<i32, BrokerError> {
    Vault::kek_id_of(sealed)
        .ok()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| BrokerError::Unavailable("sealed value without a KEK id".into()))
}

/// 100 ms, 300 ms, 900 ms… each with ±50 % jitter, so retries of many callers spread out.
pub fn jittered_backoff(attempt: u32) -> Duration {
    use rand::RngExt;
    let base = 100u64 * 3u64.pow(attempt.saturating_sub(1).min(5));
    let jitter = rand::rng().random_range(base / 2..=base + base / 2);
    Duration::from_millis(jitter)
}
