//! Webhooks after the Standard Webhooks specification (<https://www.standardwebhooks.com/>):
//! events are written to the `webhook_deliveries` outbox in the transaction of the state change
//! they announce, then delivered at least once with a stable `webhook-id`, signed with every secret
//! still in its rotation overlap, to URLs that must not resolve to internal addresses (SSRF guard).

mod delivery;
mod guard;
mod manage;
mod signature;

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

pub use delivery::{DeliverySummary, run_once};
pub use guard::{AddressPolicy, is_internal};
pub use manage::{
    DESCRIPTION_MAX_CHARS, WebhookError, add_endpoint, replay, rotate_secret, set_endpoint_enabled,
};
pub use signature::{WebhookSecret, sign};

/// The vault purpose of a webhook signing secret; the row is the secret's id.
pub const SECRET_PURPOSE: crate::vault::Purpose = crate::vault::Purpose::WebhookSecret;

/// What happened, as receivers see it in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A partner consented for the first time (or again after offboarding).
    PartnerConsented,
    /// Microsoft no longer accepts the partner's consent.
    PartnerNeedsConsent,
    /// The partner's admin must sign in again with MFA.
    PartnerMfaRequired,
    /// A partner that needed consent, MFA or was degraded works again.
    PartnerRecovered,
    /// The partner was offboarded and its grant destroyed.
    PartnerOffboarded,
    /// A refresh failed for a reason that may pass (Microsoft unavailable).
    GrantRefreshFailed,
    /// An invitation expired unused.
    InvitationExpired,
    /// What samgate knows of a partner's access to one customer changed (GDAP relationship, app
    /// consent, or the token outcome at the customer's authority).
    CustomerAccessChanged,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 8] = [
        Self::PartnerConsented,
        Self::PartnerNeedsConsent,
        Self::PartnerMfaRequired,
        Self::PartnerRecovered,
        Self::PartnerOffboarded,
        Self::GrantRefreshFailed,
        Self::InvitationExpired,
        Self::CustomerAccessChanged,
    ];

    /// The wire name, e.g. `partner.needs_consent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PartnerConsented => "partner.consented",
            Self::PartnerNeedsConsent => "partner.needs_consent",
            Self::PartnerMfaRequired => "partner.mfa_required",
            Self::PartnerRecovered => "partner.recovered",
            Self::PartnerOffboarded => "partner.offboarded",
            Self::GrantRefreshFailed => "grant.refresh_failed",
            Self::InvitationExpired => "invitation.expired",
            Self::CustomerAccessChanged => "customer.access_changed",
        }
    }

    /// What the event announces, in words for the people who choose which events to receive.
    pub fn summary(self) -> &'static str {
        match self {
            Self::PartnerConsented => "A partner consented, for the first time or again.",
            Self::PartnerNeedsConsent => "Microsoft no longer accepts a partner's consent.",
            Self::PartnerMfaRequired => "A partner's admin must sign in again with MFA.",
            Self::PartnerRecovered => {
                "A partner that needed consent, MFA or was degraded works again."
            }
            Self::PartnerOffboarded => "A partner was offboarded and its grant destroyed.",
            Self::GrantRefreshFailed => {
                "A token refresh failed for a reason that may pass (Microsoft unavailable)."
            }
            Self::InvitationExpired => "An invitation expired unused.",
            Self::CustomerAccessChanged => {
                "A partner's access to one customer changed (GDAP, app consent or token outcome)."
            }
        }
    }

    /// The event type with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Writes `event` to the outbox for every endpoint that wants it. Call it with the transaction
/// of the state change, so the event exists exactly when the change does.
pub async fn enqueue(
    executor: impl PgExecutor<'_>,
    event: EventType,
    partner_tenant_id: Option<Uuid>,
    mut data: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    if let (Some(tenant), Some(map)) = (partner_tenant_id, data.as_object_mut()) {
        map.entry("partner_tenant_id")
            .or_insert_with(|| serde_json::json!(tenant));
    }
    let timestamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let payload = serde_json::json!({
        "type": event.as_str(),
        "timestamp": timestamp,
        "data": data,
    });
    let message_id = format!("msg_{}", Uuid::now_v7().simple());
    crate::db::webhooks::enqueue(
        executor,
        &message_id,
        event.as_str(),
        partner_tenant_id,
        &payload,
        now,
    )
    .await?;
    Ok(())
}
