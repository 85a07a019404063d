//! The token broker: access tokens per (partner, authority tenant, resource), cached in memory and
//! shared through PostgreSQL by every instance. A refresh happens once per key however many
//! requests wait (a per-key lock in the process, the grant's row lock across instances, then a
//! re-read), and the rotated refresh token is sealed and committed before the new access token is
//! handed out. Outcomes are reported to `health`: at the partner's own authority they are evidence
//! about the partner; at a customer's authority they are facts about that customer only, are
//! remembered for a while (so a flood costs Microsoft one call), and never take the grant's row
//! lock (docs/ARCHITECTURE.md, "Customer-authority tokens").

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use secrecy::SecretString;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::partners::{PartnerDirectory, PartnerInfo};

use crate::clock::Clock;
use crate::db;
use crate::domain::PartnerStatus;
use crate::health;
use crate::health::customer::{CustomerProblem, TokenReport, Verdict};
use crate::identity::{Classified, ErrorClass, IdentityClient, IdentityError};
use crate::onboarding::REFRESH_TOKEN_PURPOSE;
use crate::vault::{SealContext, Sealed, Vault};

/// The vault purpose of a cached access token; the row is `partner/authority/resource`.
pub const ACCESS_TOKEN_PURPOSE: crate::vault::Purpose = crate::vault::Purpose::AccessToken;
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

/// An access token and its expiry. `Debug` shows no token. The broker hands out one shared
/// [`Arc`] per cached token, so a call costs no copy of it.
#[derive(Debug)]
pub struct AccessToken {
    /// The bearer token.
    pub secret: SecretString,
    /// When Microsoft says it expires.
    pub expires_at: OffsetDateTime,
    /// `Authorization: Bearer …`, built once per token: marked sensitive (HTTP/2's HPACK never
    /// indexes it, `Debug` shows `Sensitive`), its bytes wiped when the last call using it ends.
    bearer: axum::http::HeaderValue,
}

impl AccessToken {
    /// The token `secret`, valid until `expires_at`.
    pub fn new(secret: SecretString, expires_at: OffsetDateTime) -> Self {
        let bearer = bearer_header(secrecy::ExposeSecret::expose_secret(&secret));
        Self {
            secret,
            expires_at,
            bearer,
        }
    }

    /// The `Authorization` header value for this token (a shared, cheap copy).
    pub fn bearer(&self) -> axum::http::HeaderValue {
        self.bearer.clone()
    }
}

/// `Bearer <token>` in bytes that are zeroed when the last header holding them is dropped.
fn bearer_header(token: &str) -> axum::http::HeaderValue {
    let mut text = zeroize::Zeroizing::new(Vec::with_capacity(token.len() + 7));
    text.extend_from_slice(b"Bearer ");
    text.extend_from_slice(token.as_bytes());
    let mut value = axum::http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("Bearer invalid"));
    value.set_sensitive(true);
    value
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
    /// Microsoft refused a token in one customer's tenant: a fact about that customer only.
    #[error("{} in the customer tenant ({})", .0.problem.as_str(), code_text(&.0.classified))]
    Customer(Box<CustomerRefusal>),
    /// Microsoft throttled the token endpoint.
    #[error("token endpoint throttled")]
    Throttled,
    /// Microsoft failed in a way that may pass (or the sealed grant could not be handled).
    #[error("token unavailable: {0}")]
    Unavailable(String),
    /// samgate's own database could not be reached: says nothing about Microsoft or the partner.
    #[error("samgate's database is unavailable: {0}")]
    Storage(String),
    /// The CPV app's own configuration was refused (secret expired, wrong client…).
    #[error("the CPV app was refused ({})", .0.code.map(|c| c.to_string()).unwrap_or_default())]
    AppConfiguration(Classified),
    /// The partner has no grant.
    #[error("partner has no grant")]
    NoGrant,
}

/// A refusal at a customer's authority, as remembered and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRefusal {
    /// What it means.
    pub problem: CustomerProblem,
    /// What a person should do.
    pub advice: &'static str,
    /// Microsoft's classified answer, when it gave one.
    pub classified: Option<Classified>,
    /// Seconds until samgate asks Microsoft again.
    pub retry_after: u64,
}

/// A remembered refusal and when it is forgotten.
#[derive(Debug, Clone)]
struct Remembered {
    refusal: CustomerRefusal,
    until: std::time::Instant,
}

fn code_text(c: &Option<Classified>) -> String {
    c.as_ref()
        .and_then(|c| c.code)
        .map(|code| format!("AADSTS{code}"))
        .unwrap_or_else(|| "earlier failure".into())
}

type Slot = Arc<RwLock<Option<Arc<AccessToken>>>>;

/// The token broker of one samgate process.
#[derive(Clone)]
pub struct Broker {
    pool: PgPool,
    vault: Vault,
    identity: Arc<IdentityClient>,
    clock: Arc<dyn Clock>,
    partners: PartnerDirectory,
    slots: Cache<TokenKey, Slot, crate::cache::Hasher>,
    refusals: Cache<TokenKey, Remembered, crate::cache::Hasher>,
    memory: RefusalMemory,
    partner_center_scope: String,
    graph_scope: String,
    cache_counters: CacheCounters,
}

/// `samgate_token_cache_total` by result, registered once (the recorder is installed before the
/// broker is built, `App::build`). Handles share their series: a clone counts into the same one.
#[derive(Clone)]
struct CacheCounters {
    hit: metrics::Counter,
    miss: metrics::Counter,
    remembered_refusal: metrics::Counter,
}

impl CacheCounters {
    fn register() -> Self {
        let counter = |result: &'static str| metrics::counter!("samgate_token_cache_total", "result" => result);
        Self {
            hit: counter("hit"),
            miss: counter("miss"),
            remembered_refusal: counter("remembered_refusal"),
        }
    }
}

/// What the broker asks Microsoft for, and how long it remembers refusals.
#[derive(Debug, Clone, Copy)]
pub struct BrokerSettings<'a> {
    /// Partner Center's resource (its `/.default` scope is asked for).
    pub partner_center_resource: &'a str,
    /// Graph's resource.
    pub graph_resource: &'a str,
    /// How long refusals at customer authorities are remembered.
    pub memory: RefusalMemory,
}

/// How long refusals at customer authorities are remembered.
#[derive(Debug, Clone, Copy)]
pub struct RefusalMemory {
    /// A definitive refusal (policy, GDAP, consent, unknown tenant).
    pub refusal: Duration,
    /// A transient failure.
    pub transient: Duration,
}

impl Default for RefusalMemory {
    fn default() -> Self {
        Self {
            refusal: Duration::from_secs(300),
            transient: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("cached_keys", &self.slots.entry_count())
            .finish()
    }
}

impl Broker {
    /// A broker over the shared services. It tells `partners` when it changes a partner's state
    /// (the directory's cached copy is dropped at once).
    pub fn new(
        pool: PgPool,
        vault: Vault,
        identity: Arc<IdentityClient>,
        clock: Arc<dyn Clock>,
        partners: PartnerDirectory,
        settings: BrokerSettings<'_>,
    ) -> Self {
        let BrokerSettings {
            partner_center_resource,
            graph_resource,
            memory,
        } = settings;
        Self {
            refusals: Cache::builder()
                .max_capacity(200_000)
                .support_invalidation_closures()
                .time_to_live(memory.refusal.max(memory.transient))
                .build_with_hasher(crate::cache::Hasher::default()),
            memory,
            partners,
            pool,
            vault,
            identity,
            clock,
            // Idle keys go away; a busy key's slot lives as long as it is used.
            slots: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(2 * 3600))
                .build_with_hasher(crate::cache::Hasher::default()),
            partner_center_scope: format!(
                "{}/.default",
                partner_center_resource.trim_end_matches('/')
            ),
            graph_scope: format!("{}/.default", graph_resource.trim_end_matches('/')),
            cache_counters: CacheCounters::register(),
        }
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

    /// A refusal at a customer authority still remembered for `key`.
    fn remembered(&self, key: &TokenKey) -> Option<BrokerError> {
        if key.authority_tenant == key.partner_tenant {
            return None;
        }
        let remembered = self.refusals.get(key)?;
        let left = remembered
            .until
            .saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        self.cache_counters.remembered_refusal.increment(1);
        let mut refusal = remembered.refusal;
        refusal.retry_after = left.as_secs().max(1);
        Some(BrokerError::Customer(Box::new(refusal)))
    }

    /// Forgets remembered refusals for a customer (its facts changed: consent granted, sync).
    pub async fn forget_refusals(&self, partner_tenant: Uuid, customer: Uuid) {
        let _ = self.refusals.invalidate_entries_if(move |key, _| {
            key.partner_tenant == partner_tenant && key.authority_tenant == customer
        });
    }

    /// An access token for `key`: from memory, from another instance's refresh, or refreshed now.
    pub async fn access_token(&self, key: TokenKey) -> Result<Arc<AccessToken>, BrokerError> {
        if let Some(refusal) = self.remembered(&key) {
            return Err(refusal);
        }
        let slot = self.slots.get_with(key, || Arc::new(RwLock::new(None)));
        if let Some(token) = slot.read().await.as_ref()
            && self.is_fresh(token)
        {
            self.cache_counters.hit.increment(1);
            return Ok(token.clone());
        }
        self.cache_counters.miss.increment(1);
        let mut guard = slot.write().await;
        // Whoever held the lock before us may have refreshed already, or been refused.
        if let Some(token) = guard.as_ref()
            && self.is_fresh(token)
        {
            return Ok(token.clone());
        }
        if let Some(refusal) = self.remembered(&key) {
            return Err(refusal);
        }
        // Boxed: the refresh (database, Microsoft) is a large future that a cache hit never needs.
        let token = Arc::new(Box::pin(self.obtain(key)).await?);
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Drops a token an upstream refused (`401 invalid_token`), here and for other instances.
    pub async fn forget(&self, key: TokenKey) {
        if let Some(slot) = self.slots.get(&key) {
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

    /// Seals a new access token and stores it for the other instances; returns its expiry.
    async fn share(
        &self,
        tx: &mut sqlx::PgConnection,
        key: &TokenKey,
        response: &crate::identity::TokenResponse,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, BrokerError> {
        let expires_at = now + time::Duration::seconds(response.expires_in.min(86_400) as i64);
        let sealed = self
            .vault
            .seal_str(
                &response.access_token,
                &SealContext::new(ACCESS_TOKEN_PURPOSE, &Self::access_token_row(key)),
            )
            .map_err(|e| BrokerError::Unavailable(format!("sealing failed: {e}")))?;
        db::access_tokens::store(
            &mut *tx,
            key.partner_id,
            key.authority_tenant,
            key.resource.as_str(),
            &sealed.bytes,
            kek_of(&sealed)?,
            expires_at,
        )
        .await
        .map_err(|e| BrokerError::Storage(e.to_string()))?;
        Ok(expires_at)
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
        let token = AccessToken::new(secret, stored.expires_at);
        self.is_fresh(&token).then_some(token)
    }

    async fn obtain(&self, key: TokenKey) -> Result<AccessToken, BrokerError> {
        let db_err = |e: sqlx::Error| BrokerError::Storage(e.to_string());
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
        if key.authority_tenant == key.partner_tenant {
            self.refresh(key, false).await
        } else {
            self.refresh_at_customer(key).await
        }
    }

    /// Redeems the partner's refresh token at a customer's authority. No row lock: the grant is
    /// only read, and the refresh token Microsoft returns here is not stored (the one samgate
    /// holds stays valid; rotation is the partner-authority refresh's job), so customer calls
    /// never wait on the partner's own refreshes or on each other.
    async fn refresh_at_customer(&self, key: TokenKey) -> Result<AccessToken, BrokerError> {
        let db_err = |e: sqlx::Error| BrokerError::Storage(e.to_string());
        let grant = db::grants::find(&self.pool, key.partner_id)
            .await
            .map_err(db_err)?
            .ok_or(BrokerError::NoGrant)?;
        let refresh_token = self
            .vault
            .open_string(
                &grant.sealed_refresh_token,
                &SealContext::new(REFRESH_TOKEN_PURPOSE, &key.partner_tenant.to_string()),
            )
            .map_err(|e| BrokerError::Unavailable(format!("grant cannot be opened: {e}")))?;
        let result = self
            .redeem_with_retry(
                &key.authority_tenant.to_string(),
                &refresh_token,
                self.scope(key.resource),
            )
            .await;
        drop(refresh_token);
        let (outcome, class) = match &result {
            Ok(_) => ("ok", "none"),
            Err(err) => ("error", err.class().as_str()),
        };
        metrics::counter!("samgate_token_refreshes_total", "outcome" => outcome, "class" => class, "authority" => "customer")
            .increment(1);
        let now = self.clock.now();
        match result {
            Ok(response) => {
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                let expires_at = self.share(&mut tx, &key, &response, now).await?;
                health::customer::record_token(
                    &mut tx,
                    key.partner_id,
                    key.partner_tenant,
                    key.authority_tenant,
                    TokenReport::Issued,
                    now,
                )
                .await
                .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(AccessToken::new(response.access_token, expires_at))
            }
            Err(error) => {
                let refusal = match error {
                    IdentityError::Refused(classified) => {
                        match health::customer::verdict(&classified) {
                            Verdict::Customer(problem, advice) => CustomerRefusal {
                                problem,
                                advice,
                                classified: Some(classified),
                                retry_after: 0,
                            },
                            Verdict::App => return Err(BrokerError::AppConfiguration(classified)),
                            Verdict::GrantSuspect => self.verify_grant(key, classified).await?,
                        }
                    }
                    IdentityError::Unreachable(_)
                    | IdentityError::Protocol(_)
                    | IdentityError::IdToken(_) => CustomerRefusal {
                        problem: CustomerProblem::Unavailable,
                        advice: "Microsoft's token service did not answer for this customer's tenant; retry after the time given.",
                        classified: None,
                        retry_after: 0,
                    },
                };
                Err(self.remember(key, refusal).await)
            }
        }
    }

    /// A customer authority said the refresh token itself is dead: only the partner's own
    /// authority may confirm that. Confirmed → the partner's error (its status changed there);
    /// not confirmed → a refusal in this customer only.
    async fn verify_grant(
        &self,
        key: TokenKey,
        classified: Classified,
    ) -> Result<CustomerRefusal, BrokerError> {
        let partner_key = TokenKey {
            authority_tenant: key.partner_tenant,
            resource: Resource::PartnerCenter,
            ..key
        };
        match self.refresh(partner_key, true).await {
            Ok(_) => Ok(CustomerRefusal {
                problem: CustomerProblem::AccessDenied,
                advice: "Microsoft refused the partner's sign-in in this customer's tenant although it works in the partner's own tenant: check the partner's GDAP access to this customer.",
                classified: Some(classified),
                retry_after: 0,
            }),
            Err(err @ (BrokerError::ConsentRequired(_) | BrokerError::MfaRequired(_))) => Err(err),
            Err(_) => Ok(CustomerRefusal {
                problem: CustomerProblem::Unavailable,
                advice: "Microsoft's token service did not answer for this customer's tenant; retry after the time given.",
                classified: Some(classified),
                retry_after: 0,
            }),
        }
    }

    /// Remembers a customer refusal, records it as the customer's token outcome, and returns the
    /// error to answer with.
    async fn remember(&self, key: TokenKey, mut refusal: CustomerRefusal) -> BrokerError {
        let memory = if refusal.problem == CustomerProblem::Unavailable {
            self.memory.transient
        } else {
            self.memory.refusal
        };
        refusal.retry_after = memory.as_secs().max(1);
        self.refusals.insert(
            key,
            Remembered {
                refusal: refusal.clone(),
                until: std::time::Instant::now() + memory,
            },
        );
        if let Some(classified) = &refusal.classified
            && refusal.problem != CustomerProblem::Unavailable
        {
            let recorded = async {
                let mut tx = self.pool.begin().await?;
                health::customer::record_token(
                    &mut tx,
                    key.partner_id,
                    key.partner_tenant,
                    key.authority_tenant,
                    TokenReport::Refused(refusal.problem, refusal.advice, classified),
                    self.clock.now(),
                )
                .await?;
                tx.commit().await
            };
            if let Err(err) = recorded.await {
                tracing::warn!(error = %err, "cannot record a customer token refusal");
            }
        }
        BrokerError::Customer(Box::new(refusal))
    }

    /// Redeems the partner's refresh token for `key` under the grant's row lock. With
    /// `force`, skips the shared-token shortcut (keep-alive wants the refresh itself).
    async fn refresh(&self, key: TokenKey, force: bool) -> Result<AccessToken, BrokerError> {
        let db_err = |e: sqlx::Error| BrokerError::Storage(e.to_string());
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
                        &sealed.bytes,
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
                let expires_at = self.share(&mut tx, &key, &response, now).await?;
                // The rotated refresh token is durable before anyone uses the new access token.
                tx.commit().await.map_err(db_err)?;
                if force
                    || !matches!(
                        self.partners.cached_status(key.partner_tenant).await,
                        Some(PartnerStatus::Healthy) | None
                    )
                {
                    self.mark_recovered(key).await;
                }
                Ok(AccessToken::new(response.access_token, expires_at))
            }
            Err(error) => {
                let outcome = self.classify(error);
                if let Some(classified) = outcome.partner_refusal() {
                    health::partner::record_refusal(
                        &mut tx,
                        key.partner_id,
                        key.partner_tenant,
                        classified,
                        key.authority_tenant,
                        now,
                    )
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
                    let degraded = health::partner::record_transient_failure(
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
        match self.slots.get(&key) {
            Some(slot) => {
                let mut guard = slot.write().await;
                let token = self.refresh(key, true).await?;
                *guard = Some(Arc::new(token));
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

    /// Classifies a refusal at the partner's own authority.
    fn classify(&self, error: IdentityError) -> BrokerError {
        let classified = match error {
            IdentityError::Refused(classified) => classified,
            IdentityError::Unreachable(detail) | IdentityError::Protocol(detail) => {
                return BrokerError::Unavailable(detail);
            }
            IdentityError::IdToken(err) => return BrokerError::Unavailable(err.to_string()),
        };
        match classified.class {
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

    async fn mark_recovered(&self, key: TokenKey) {
        let now = self.clock.now();
        let Ok(mut tx) = self.pool.begin().await else {
            return;
        };
        // back to healthy with its audit record and `partner.recovered`, all or nothing.
        if health::partner::record_refresh_success(&mut tx, key.partner_id, key.partner_tenant, now)
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
    /// Microsoft's refusal of the partner's grant, if this failure is one.
    fn partner_refusal(&self) -> Option<&Classified> {
        match self {
            Self::ConsentRequired(Some(c)) | Self::MfaRequired(Some(c)) => Some(c),
            _ => None,
        }
    }
}

/// The KEK id of a fresh seal as the `i32` the tables store.
fn kek_of(sealed: &Sealed) -> Result<i32, BrokerError> {
    i32::try_from(sealed.kek_id)
        .map_err(|_| BrokerError::Unavailable("KEK id out of the stored range".into()))
}

/// 100 ms, 300 ms, 900 ms… each with ±50 % jitter, so retries of many callers spread out.
pub fn jittered_backoff(attempt: u32) -> Duration {
    use rand::RngExt;
    let base = 100u64 * 3u64.pow(attempt.saturating_sub(1).min(5));
    let jitter = rand::rng().random_range(base / 2..=base + base / 2);
    Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_its_bearer_header_sensitive_and_shows_neither_in_debug() {
        let token = AccessToken::new(
            SecretString::from("eyJ0eXAi.payload.signature"),
            OffsetDateTime::UNIX_EPOCH,
        );
        let header = token.bearer();
        assert_eq!(header, "Bearer eyJ0eXAi.payload.signature");
        assert!(header.is_sensitive(), "never HPACK-indexed");
        // Clones share the bytes the token built once.
        assert_eq!(
            token.bearer().as_bytes().as_ptr(),
            header.as_bytes().as_ptr()
        );
        let shown = format!("{token:?} {header:?}");
        assert!(!shown.contains("payload"), "{shown}");
    }
}
