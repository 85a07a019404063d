//! The health state machine's transitions. States change only on evidence: Microsoft's refusal
//! (`needs_consent`, `mfa_required`), `DEGRADED_AFTER` transient failures in a row (`degraded`),
//! a successful refresh (`degraded` → `healthy`). Callers pass their transaction.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db;
use crate::identity::Classified;
use crate::webhooks::{self, EventType};

/// Transient refresh failures in a row that move a healthy partner to `degraded`.
pub const DEGRADED_AFTER: i32 = 3;

/// Announces a consent-class failure (`needs_consent`/`mfa_required`) when it changes the
/// partner's state; call before writing the new status, in the same transaction.
pub async fn announce_refusal(
    conn: &mut PgConnection,
    partner_id: Uuid,
    partner_tenant: Uuid,
    new_status: &str,
    classified: &Classified,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let previous = db::lifecycle::lock_status(&mut *conn, partner_id).await?;
    if previous.as_deref() == Some(new_status) {
        return Ok(());
    }
    let event = if new_status == "mfa_required" {
        EventType::PartnerMfaRequired
    } else {
        EventType::PartnerNeedsConsent
    };
    webhooks::enqueue(
        &mut *conn,
        event,
        Some(partner_tenant),
        serde_json::json!({
            "previous_status": previous,
            "status": new_status,
            "error": classified.error,
            "code": classified.code,
            "class": classified.class.as_str(),
            "advice": classified.advice,
        }),
        now,
    )
    .await
}

/// Counts a transient refresh failure and moves a healthy partner to `degraded` after
/// [`DEGRADED_AFTER`] in a row. `grant.refresh_failed` announces the first failure of a run and
/// the one that degrades the partner, not every one: while Microsoft is down, every proxied call
/// that needs a token fails, and receivers should not get one event per call. True when the
/// status changed.
pub async fn record_transient_failure(
    conn: &mut PgConnection,
    partner_id: Uuid,
    partner_tenant: Uuid,
    detail: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let Some(failures) =
        db::lifecycle::count_transient_failure(&mut *conn, partner_id, now).await?
    else {
        return Ok(false);
    };
    let degrade = failures >= DEGRADED_AFTER
        && db::lifecycle::lock_status(&mut *conn, partner_id)
            .await?
            .as_deref()
            == Some("healthy");
    if degrade {
        db::partners::set_status(
            &mut *conn,
            partner_id,
            "degraded",
            Some(
                "Microsoft's token service failed for this partner several times in a row; samgate \
                 keeps retrying. No action is needed unless it persists.",
            ),
            None,
            now,
        )
        .await?;
        db::audit::record(
            &mut *conn,
            "system",
            "partner.degraded",
            Some(partner_tenant),
            serde_json::json!({ "consecutive_failures": failures }),
            now,
        )
        .await?;
    }
    if failures != 1 && !degrade {
        return Ok(false);
    }
    webhooks::enqueue(
        &mut *conn,
        EventType::GrantRefreshFailed,
        Some(partner_tenant),
        serde_json::json!({
            "class": "transient",
            "consecutive_failures": failures,
            "status": if degrade { Some("degraded") } else { None },
            "detail": truncate(detail, 200),
        }),
        now,
    )
    .await?;
    Ok(degrade)
}

/// After a successful refresh: clears the failure count and moves `degraded` to `healthy` with
/// its audit record and `partner.recovered`. True when the status changed.
pub async fn record_success(
    conn: &mut PgConnection,
    partner_id: Uuid,
    partner_tenant: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    db::lifecycle::clear_failures(&mut *conn, partner_id).await?;
    let changed =
        db::partners::set_status_if(&mut *conn, partner_id, "degraded", "healthy", now).await?;
    if changed {
        announce_recovery(conn, partner_tenant, "degraded", now).await?;
    }
    Ok(changed)
}

/// Writes the audit record and `partner.recovered` of a partner that works again.
pub async fn announce_recovery(
    conn: &mut PgConnection,
    partner_tenant: Uuid,
    previous_status: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    db::audit::record(
        &mut *conn,
        "system",
        "partner.recovered",
        Some(partner_tenant),
        serde_json::json!({ "previous_status": previous_status }),
        now,
    )
    .await?;
    webhooks::enqueue(
        &mut *conn,
        EventType::PartnerRecovered,
        Some(partner_tenant),
        serde_json::json!({ "previous_status": previous_status, "status": "healthy" }),
        now,
    )
    .await
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}
