//! Keep-alive: refreshes grants not refreshed for `SAMGATE_KEEPALIVE_AFTER_DAYS`, so no refresh
//! token reaches Microsoft's 90-day inactivity limit. A grant is claimed with a lease in a short
//! `SKIP LOCKED` statement that commits before the refresh (the broker then takes the row lock
//! itself), so instances share the work, never refresh one grant twice in a cycle, and never
//! wait on their own lock. Refreshes run with bounded concurrency, each after a random delay.

use std::time::Duration;

use futures_util::StreamExt;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::App;
use crate::broker::BrokerError;
use crate::db;
use crate::db::lifecycle::ClaimedGrant;
use crate::health::partner as health;
use crate::partners::PartnerInfo;

/// Grants leased per batch.
const BATCH: i64 = 100;
/// A claim's lease: longer than any refresh takes (the broker's retries included).
const LEASE: time::Duration = time::Duration::minutes(5);

/// Which grants to refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Live grants not refreshed for the configured number of days (the worker's cycle).
    Due,
    /// Every live grant, however recently refreshed (`samgate partners refresh --all`).
    All,
    /// One partner's grant, in any state but offboarded, ignoring leases (`--tenant`).
    Tenant(Uuid),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Refreshed and stored.
    pub refreshed: u64,
    /// Microsoft needs the partner to consent again.
    pub needs_consent: u64,
    /// Microsoft needs the partner's admin to pass MFA again.
    pub mfa_required: u64,
    /// Failed for a reason that may pass (retried next cycle).
    pub failed: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refreshed {}, needs_consent {}, mfa_required {}, failed {}",
            self.refreshed, self.needs_consent, self.mfa_required, self.failed
        )
    }
}

enum Outcome {
    Refreshed,
    NeedsConsent,
    MfaRequired,
    Failed,
    Gone,
}

/// One keep-alive cycle over the due grants (idempotent: refreshed grants are no longer due).
pub async fn run_once(app: &App, now: OffsetDateTime) -> anyhow::Result<Summary> {
    run(app, now, Selection::Due).await
}

/// Refreshes the selected grants and summarises the outcomes.
pub async fn run(app: &App, now: OffsetDateTime, selection: Selection) -> anyhow::Result<Summary> {
    let (refreshed_before, tenant) = match selection {
        Selection::Due => (now - app.config.lifecycle.keepalive_after, None),
        // Anything refreshed before the end of today's cycle: every grant.
        Selection::All => (now + time::Duration::days(1), None),
        Selection::Tenant(tenant) => (now + time::Duration::days(1), Some(tenant)),
    };
    let mut summary = Summary::default();
    loop {
        let batch = db::lifecycle::claim_for_keep_alive(
            &app.pool,
            refreshed_before,
            tenant,
            now,
            // From the claim's own time: a long run's later batches still get a full lease.
            app.clock.now().max(now) + LEASE,
            BATCH,
        )
        .await?;
        let full = batch.len() as i64 == BATCH;
        if batch.is_empty() {
            break;
        }
        let outcomes: Vec<Outcome> = futures_util::stream::iter(batch)
            .map(|grant| refresh_one(app, grant))
            .buffer_unordered(app.config.lifecycle.keepalive_concurrency)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome {
                Outcome::Refreshed => summary.refreshed += 1,
                Outcome::NeedsConsent => summary.needs_consent += 1,
                Outcome::MfaRequired => summary.mfa_required += 1,
                Outcome::Failed => summary.failed += 1,
                Outcome::Gone => {}
            }
        }
        if !full || tenant.is_some() {
            break;
        }
    }
    Ok(summary)
}

async fn refresh_one(app: &App, grant: ClaimedGrant) -> Outcome {
    let jitter = app.config.lifecycle.keepalive_jitter;
    if !jitter.is_zero() {
        use rand::RngExt;
        let millis = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
        let delay = Duration::from_millis(rand::rng().random_range(0..=millis));
        tokio::time::sleep(delay).await;
    }
    let partner = PartnerInfo {
        id: grant.partner_id,
        tenant_id: grant.tenant_id,
        display_name: grant.display_name,
        status: grant.status,
        status_code: grant.status_code,
        status_reason: grant.status_reason,
    };
    let result = app.broker.refresh_grant(&partner).await;
    let outcome = match &result {
        Ok(()) => {
            if let Err(err) = record_success(app, &partner).await {
                tracing::warn!(partner.tenant_id = %partner.tenant_id, error = %err, "cannot record a keep-alive success");
            }
            Outcome::Refreshed
        }
        // The broker has already stored the new state, its audit record and its event.
        Err(BrokerError::ConsentRequired(_)) => Outcome::NeedsConsent,
        Err(BrokerError::MfaRequired(_)) => Outcome::MfaRequired,
        Err(BrokerError::NoGrant) => Outcome::Gone,
        Err(_) => Outcome::Failed,
    };
    match &result {
        Ok(()) => {
            tracing::info!(partner.tenant_id = %partner.tenant_id, "keep-alive refreshed the grant")
        }
        Err(err) => {
            tracing::warn!(partner.tenant_id = %partner.tenant_id, error = %err, "keep-alive refresh failed")
        }
    }
    outcome
}

async fn record_success(app: &App, partner: &PartnerInfo) -> Result<(), sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    let changed =
        health::record_refresh_success(&mut tx, partner.id, partner.tenant_id, app.clock.now())
            .await?;
    tx.commit().await?;
    if changed {
        app.partners.invalidate(partner.tenant_id).await;
    }
    Ok(())
}
