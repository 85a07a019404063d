//! Verifies presented keys without a database round trip per request: answers are cached by key
//! hash (30 s, "unknown" 2 s) and loaded once however many requests wait. A change notification
//! (`LISTEN samgate_api_keys`, payload: the key or client id) drops the answers it can affect —
//! that key's or client's, and every "unknown key" — and an affected answer loaded before the
//! change is never served; `last_used_at` is kept in memory and written in batches.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::future::Cache;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use time::OffsetDateTime;
use uuid::Uuid;

use super::key::ApiKey;
use super::manage::{self, ApiKeyError, ApiKeyRecord, Client};
use super::principal::{PartnerScope, Principal};
use crate::db;
use crate::db::api_clients::{CHANGES_CHANNEL, VerificationRow};
use crate::domain::Actor;

/// How often [`ApiKeyVerifier::spawn_background`] writes `last_used_at`.
pub const LAST_USED_FLUSH_INTERVAL: Duration = Duration::from_secs(30);
const MAX_LISTEN_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Why a presented key was refused. Callers see one answer ([`KeyRejection::Invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    /// Malformed, unknown, revoked, expired, or its client is disabled (reason in the logs only).
    #[error("the API key is not valid")]
    Invalid,
    /// The key could not be checked (database unavailable): try again later.
    #[error("API keys cannot be checked right now")]
    Unavailable,
}

/// The internal reason behind [`KeyRejection::Invalid`], for logs.
#[derive(Debug, Clone, Copy)]
enum Reason {
    Malformed,
    Unknown,
    Revoked,
    Expired,
    ClientDisabled,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::ClientDisabled => "client_disabled",
        }
    }
}

/// Cache lifetimes and size.
#[derive(Debug, Clone, Copy)]
pub struct VerifierSettings {
    /// How long a found key is trusted without a notification (the bound on staleness when the
    /// listener is down).
    pub positive_ttl: Duration,
    /// How long "no such key" is remembered (a flood of guesses costs one query per key per TTL).
    pub negative_ttl: Duration,
    /// Cache capacity in entries.
    pub max_entries: u64,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            positive_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(2),
            max_entries: 100_000,
        }
    }
}

/// A key as loaded, with the principal it stands for.
#[derive(Debug)]
struct KnownKey {
    principal: Arc<Principal>,
    /// The whole second (Unix time) of the last use noted for `last_used_at`: later uses in the
    /// same second take no lock (the stored time is exact to the second).
    noted_second: AtomicI64,
    expires_at: Option<OffsetDateTime>,
    revoked: bool,
    client_disabled: bool,
}

impl From<VerificationRow> for KnownKey {
    fn from(row: VerificationRow) -> Self {
        Self {
            principal: Arc::new(Principal {
                client_id: row.client_id,
                client_name: row.client_name,
                key_id: row.key_id,
                scope: PartnerScope::from_stored(row.all_partners, row.partners),
                read_only: row.read_only,
            }),
            noted_second: AtomicI64::new(i64::MIN),
            expires_at: row.expires_at,
            revoked: row.revoked_at.is_some(),
            client_disabled: row.client_disabled_at.is_some(),
        }
    }
}

/// A cache entry: the answer and the change generation current when its query started.
#[derive(Debug, Clone)]
struct Answer {
    generation: u64,
    key: Option<Arc<KnownKey>>,
}

struct Lifetimes(VerifierSettings);

impl moka::Expiry<[u8; 32], Answer> for Lifetimes {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Answer,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value.key {
            Some(_) => self.0.positive_ttl,
            None => self.0.negative_ttl,
        })
    }
}

/// Recent changes by generation, to tell which cached answers a change can affect.
#[derive(Debug, Default)]
struct ChangeLog {
    /// `(generation, key or client id)`, oldest first.
    recent: VecDeque<(u64, Uuid)>,
    /// Answers loaded before this generation are stale whatever they are.
    floor: u64,
}

/// How many recent changes are remembered individually; older ones count as "everything changed".
const CHANGE_LOG_LEN: usize = 4096;

struct Inner {
    pool: PgPool,
    cache: Cache<[u8; 32], Answer, crate::cache::Hasher>,
    /// Bumped on every change notification and local change.
    generation: AtomicU64,
    /// Which ids changed at which generation.
    changes: Mutex<ChangeLog>,
    /// Key id → latest successful use, not yet written.
    used: Mutex<HashMap<Uuid, OffsetDateTime>>,
    lookups: AtomicU64,
    listening: AtomicBool,
}

/// Checks presented API keys (cheap to clone; one per process, in `App`).
#[derive(Clone)]
pub struct ApiKeyVerifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiKeyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyVerifier")
            .field("cached", &self.inner.cache.entry_count())
            .field("generation", &self.inner.generation.load(Ordering::SeqCst))
            .field("listening", &self.is_listening())
            .finish_non_exhaustive()
    }
}

impl ApiKeyVerifier {
    /// A verifier with the default cache settings.
    pub fn new(pool: PgPool) -> Self {
        Self::with_settings(pool, VerifierSettings::default())
    }

    /// A verifier with explicit cache settings.
    pub fn with_settings(pool: PgPool, settings: VerifierSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(Lifetimes(settings))
            .support_invalidation_closures()
            .build_with_hasher(crate::cache::Hasher::default());
        Self {
            inner: Arc::new(Inner {
                pool,
                cache,
                generation: AtomicU64::new(0),
                changes: Mutex::new(ChangeLog::default()),
                used: Mutex::new(HashMap::new()),
                lookups: AtomicU64::new(0),
                listening: AtomicBool::new(false),
            }),
        }
    }

    /// The client behind `presented` (the bearer token as sent), if the key is valid at `now`.
    pub async fn verify(
        &self,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<Principal>, KeyRejection> {
        let Some(key) = ApiKey::parse(presented) else {
            return Err(rejected(Reason::Malformed, None));
        };
        let Some(known) = self.lookup(key.hash()).await? else {
            return Err(rejected(Reason::Unknown, None));
        };
        let refusal = if known.revoked {
            Some(Reason::Revoked)
        } else if known.client_disabled {
            Some(Reason::ClientDisabled)
        } else if known.expires_at.is_some_and(|at| at <= now) {
            Some(Reason::Expired)
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(rejected(reason, Some(&known.principal)));
        }
        if known
            .noted_second
            .swap(now.unix_timestamp(), Ordering::Relaxed)
            != now.unix_timestamp()
        {
            self.note_use(known.principal.key_id, now);
        }
        Ok(known.principal.clone())
    }

    /// The cached answer for `hash`, loading it (once for all waiters) when missing or stale.
    async fn lookup(&self, hash: [u8; 32]) -> Result<Option<Arc<KnownKey>>, KeyRejection> {
        for _ in 0..2 {
            let answer = self
                .inner
                .cache
                .try_get_with(hash, self.load(hash))
                .await
                .map_err(|err| unavailable(&err))?;
            if self.is_current(&answer) {
                return Ok(answer.key);
            }
            // Loaded before the latest change notification, so it may predate the change.
            self.inner.cache.invalidate(&hash).await;
        }
        // Changes keep arriving: answer straight from the database.
        Ok(self.load(hash).await.map_err(|err| unavailable(&err))?.key)
    }

    async fn load(&self, hash: [u8; 32]) -> Result<Answer, sqlx::Error> {
        // Read before the query: a change committed after this point bumps the generation later.
        let generation = self.inner.generation.load(Ordering::SeqCst);
        self.inner.lookups.fetch_add(1, Ordering::Relaxed);
        let row = db::api_clients::find_for_verification(&self.inner.pool, &hash).await?;
        Ok(Answer {
            generation,
            key: row.map(|row| Arc::new(KnownKey::from(row))),
        })
    }

    fn note_use(&self, key_id: Uuid, now: OffsetDateTime) {
        let mut used = self.inner.used.lock().unwrap_or_else(|e| e.into_inner());
        let at = used.entry(key_id).or_insert(now);
        *at = (*at).max(now);
    }

    /// How many database lookups this verifier has made (cache misses; for tests and metrics).
    pub fn lookups(&self) -> u64 {
        self.inner.lookups.load(Ordering::Relaxed)
    }

    /// How many changes (notified or local) this verifier has applied so far.
    pub fn changes_seen(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Whether the change listener is subscribed (when false, revocations reach this instance only
    /// through the cache lifetime, at most 30 s).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::SeqCst)
    }

    /// Forgets every cached answer, including loads in flight.
    pub fn invalidate_all(&self) {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .floor = generation;
        self.inner.cache.invalidate_all();
    }

    /// Forgets the answers a change to key or client `id` can affect: that key's or client's,
    /// and every "unknown key" answer (the change may be the key's creation).
    pub fn invalidate_for(&self, id: Uuid) {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut changes = self.inner.changes.lock().unwrap_or_else(|e| e.into_inner());
            changes.recent.push_back((generation, id));
            while changes.recent.len() > CHANGE_LOG_LEN {
                if let Some((forgotten, _)) = changes.recent.pop_front() {
                    changes.floor = changes.floor.max(forgotten);
                }
            }
        }
        let dropped = self
            .inner
            .cache
            .invalidate_entries_if(move |_, answer| affected_by(answer, id));
        if dropped.is_err() {
            self.inner.cache.invalidate_all();
        }
    }

    /// Whether no change since `answer` was loaded can affect it.
    fn is_current(&self, answer: &Answer) -> bool {
        // Nothing changed since it was loaded (a change bumps the generation before it is
        // logged): no lock needed.
        if answer.generation == self.inner.generation.load(Ordering::SeqCst) {
            return true;
        }
        let changes = self.inner.changes.lock().unwrap_or_else(|e| e.into_inner());
        if answer.generation < changes.floor {
            return false;
        }
        !changes
            .recent
            .iter()
            .rev()
            .take_while(|(generation, _)| *generation > answer.generation)
            .any(|(_, id)| affected_by(answer, *id))
    }

    /// Writes the recorded uses to `last_used_at` in one statement; returns the rows updated.
    /// On failure the uses are kept for the next flush.
    pub async fn flush_last_used(&self) -> Result<u64, sqlx::Error> {
        let batch: Vec<(Uuid, OffsetDateTime)> = {
            let mut used = self.inner.used.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *used).into_iter().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let (ids, times): (Vec<Uuid>, Vec<OffsetDateTime>) = batch.iter().copied().unzip();
        match db::api_clients::record_key_use(&self.inner.pool, &ids, &times).await {
            Ok(updated) => Ok(updated),
            Err(err) => {
                for (key_id, at) in batch {
                    self.note_use(key_id, at);
                }
                Err(err)
            }
        }
    }

    /// Follows `LISTEN samgate_api_keys` and empties the cache on every notification, reconnecting
    /// with backoff (and emptying the cache, as notifications may have been missed) after errors.
    /// Returns only when the pool is closed. [`spawn_background`](Self::spawn_background) runs it.
    pub async fn listen_for_revocations(self) {
        let mut delay = Duration::from_secs(1);
        loop {
            match self.listen_until_error(&mut delay).await {
                Ok(()) => return,
                Err(err) => tracing::warn!(
                    error = %err,
                    retry_in_s = delay.as_secs(),
                    "api key change listener failed; reconnecting"
                ),
            }
            // The cache is kept while the database is away (no revocation can happen without it,
            // and cached keys keep serving); it is emptied once the subscription is back, since
            // notifications may have been missed in between.
            self.inner.listening.store(false, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_LISTEN_RETRY_DELAY);
        }
    }

    async fn listen_until_error(&self, delay: &mut Duration) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.inner.pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        // Anything cached may predate the subscription.
        self.invalidate_all();
        self.inner.listening.store(true, Ordering::SeqCst);
        *delay = Duration::from_secs(1);
        tracing::debug!("listening for api key changes");
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    tracing::debug!(
                        api_keys.changed = notification.payload(),
                        "api key change notified"
                    );
                    match Uuid::parse_str(notification.payload()) {
                        Ok(id) => self.invalidate_for(id),
                        Err(_) => self.invalidate_all(),
                    }
                }
                // The connection dropped: resubscribe (which empties the cache) from the top.
                Ok(None) => {
                    return Err(sqlx::Error::Protocol(
                        "api key change listener lost its connection".into(),
                    ));
                }
                Err(sqlx::Error::PoolClosed) => {
                    self.inner.listening.store(false, Ordering::SeqCst);
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Runs the change listener and the `last_used_at` flush (every 30 s) until `shutdown`
    /// completes, then flushes once more. Await the handle before closing the pool.
    pub fn spawn_background(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let listen = this.clone().listen_for_revocations();
            tokio::pin!(listen, shutdown);
            let mut listen_done = false;
            let mut flush = tokio::time::interval(LAST_USED_FLUSH_INTERVAL);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = &mut listen, if !listen_done => listen_done = true,
                    _ = flush.tick() => this.flush_logged().await,
                }
            }
            this.flush_logged().await;
        })
    }

    async fn flush_logged(&self) {
        if let Err(err) = self.flush_last_used().await {
            tracing::warn!(error = %err, "cannot record api key use");
        }
    }

    /// [`manage::revoke_key`], then drops this instance's cache at once (others follow on the
    /// database notification).
    pub async fn revoke_key(
        &self,
        key_id: Uuid,
        by: &Actor,
        now: OffsetDateTime,
    ) -> Result<ApiKeyRecord, ApiKeyError> {
        let record = manage::revoke_key(&self.inner.pool, key_id, by, now).await?;
        self.invalidate_for(key_id);
        Ok(record)
    }

    /// [`manage::disable_client`], then drops this instance's cache at once.
    pub async fn disable_client(
        &self,
        client_id: Uuid,
        by: &Actor,
        now: OffsetDateTime,
    ) -> Result<Client, ApiKeyError> {
        let client = manage::disable_client(&self.inner.pool, client_id, by, now).await?;
        self.invalidate_for(client_id);
        Ok(client)
    }

    /// [`manage::set_client_partners`], then drops this instance's cache at once.
    pub async fn set_client_partners(
        &self,
        client_id: Uuid,
        partners: Option<Vec<Uuid>>,
        by: &Actor,
        now: OffsetDateTime,
    ) -> Result<Client, ApiKeyError> {
        let client =
            manage::set_client_partners(&self.inner.pool, client_id, partners, by, now).await?;
        self.invalidate_for(client_id);
        Ok(client)
    }
}

/// Whether a change to key or client `id` can change `answer`.
fn affected_by(answer: &Answer, id: Uuid) -> bool {
    match &answer.key {
        None => true,
        Some(known) => known.principal.key_id == id || known.principal.client_id == id,
    }
}

fn rejected(reason: Reason, principal: Option<&Principal>) -> KeyRejection {
    match principal {
        Some(p) => tracing::info!(
            api_key.id = %p.key_id,
            api_client.id = %p.client_id,
            api_key.rejection = reason.as_str(),
            "api key rejected"
        ),
        // Malformed and unknown keys can arrive in floods: debug only, and never the value.
        None => tracing::debug!(api_key.rejection = reason.as_str(), "api key rejected"),
    }
    KeyRejection::Invalid
}

fn unavailable(err: &sqlx::Error) -> KeyRejection {
    tracing::warn!(error = %err, "api key lookup failed");
    KeyRejection::Unavailable
}
