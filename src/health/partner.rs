//! A partner's health state machine. States change only on evidence from the partner's own
//! authority or Partner Center: a refusal (`needs_consent`, `mfa_required`), `DEGRADED_AFTER`
//! transient failures in a row (`degraded`), a successful refresh (back to `healthy`).
//! [`next_status`] is the whole table; the functions below write a transition with its audit
//! record and webhook event in the caller's transaction.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db;
use crate::domain::{Actor, PartnerStatus};
use crate::identity::{Classified, ErrorClass};
use crate::webhooks::{self, EventType};

/// Transient refresh failures in a row that move a healthy partner to `degraded`.
pub const DEGRADED_AFTER: i32 = 3;

/// What happened at the partner's own authority (or at Partner Center).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The partner's admin completed a consent.
    Consented,
    /// A refresh at the partner's own authority succeeded.
    RefreshSucceeded,
    /// Microsoft refused the grant; the admin must consent again.
    ConsentRefused,
    /// Microsoft requires a new sign-in with MFA.
    MfaRefused,
    /// A refresh failed for a reason that may pass; the count of such failures in a row.
    TransientFailures(i32),
    /// The partner was offboarded.
    Offboarding,
}

impl Evidence {
    /// The evidence a classified refusal is, if it is about the partner's grant at all.
    pub fn of_refusal(classified: &Classified) -> Option<Self> {
        match classified.class {
            ErrorClass::MfaRequired => Some(Self::MfaRefused),
            class if class.needs_reconsent() => Some(Self::ConsentRefused),
            _ => None,
        }
    }
}

/// The partner's next status given `evidence`: the whole state machine.
pub fn next_status(current: PartnerStatus, evidence: Evidence) -> PartnerStatus {
    use PartnerStatus::*;
    match (current, evidence) {
        (_, Evidence::Offboarding) => Offboarded,
        (_, Evidence::Consented) => Healthy,
        // Without a grant nothing can be refreshed or refused.
        (Pending | Offboarded, _) => current,
        (_, Evidence::RefreshSucceeded) => Healthy,
        (_, Evidence::ConsentRefused) => NeedsConsent,
        (_, Evidence::MfaRefused) => MfaRequired,
        (Healthy, Evidence::TransientFailures(n)) if n >= DEGRADED_AFTER => Degraded,
        (_, Evidence::TransientFailures(_)) => current,
    }
}

/// Records a consent-class refusal of the partner's grant at its own authority: the new status
/// with Microsoft's code and advice, the grant's last error, its cached access tokens dropped, an
/// audit record, and (when the status changes) the partner's webhook event. Returns the new
/// status.
pub async fn record_refusal(
    conn: &mut PgConnection,
    partner_id: Uuid,
    partner_tenant: Uuid,
    classified: &Classified,
    authority_tenant: Uuid,
    now: OffsetDateTime,
) -> Result<PartnerStatus, sqlx::Error> {
    let previous = db::lifecycle::lock_status(&mut *conn, partner_id)
        .await?
        .unwrap_or(PartnerStatus::Pending);
    let Some(evidence) = Evidence::of_refusal(classified) else {
        return Ok(previous);
    };
    let status = next_status(previous, evidence);
    let code = classified.code.map(|c| c.to_string());
    if status != previous {
        let event = if status == PartnerStatus::MfaRequired {
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
                "status": status,
                "error": classified.error,
                "code": classified.code,
                "class": classified.class.as_str(),
                "advice": classified.advice,
            }),
            now,
        )
        .await?;
    }
    db::partners::set_status(
        &mut *conn,
        partner_id,
        status,
        Some(classified.advice),
        code.as_deref(),
        now,
    )
    .await?;
    db::grants::record_error(&mut *conn, partner_id, code.as_deref(), now).await?;
    db::access_tokens::delete_for_partner(&mut *conn, partner_id).await?;
    db::audit::record(
        &mut *conn,
        &Actor::System,
        "grant.refresh_failed",
        Some(partner_tenant),
        serde_json::json!({
            "status": status,
            "error": classified.error,
            "code": classified.code,
            "class": classified.class.as_str(),
            "authority_tenant": authority_tenant,
        }),
        now,
    )
    .await?;
    Ok(status)
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
    let previous = db::lifecycle::lock_status(&mut *conn, partner_id)
        .await?
        .unwrap_or(PartnerStatus::Pending);
    let degrade = next_status(previous, Evidence::TransientFailures(failures)) != previous;
    if degrade {
        db::partners::set_status(
            &mut *conn,
            partner_id,
            PartnerStatus::Degraded,
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
            &Actor::System,
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

/// After a successful refresh at the partner's own authority: clears the failure count and
/// moves a `degraded`, `needs_consent` or `mfa_required` partner back to `healthy` with its
/// audit record and `partner.recovered`. True when the status changed.
pub async fn record_refresh_success(
    conn: &mut PgConnection,
    partner_id: Uuid,
    partner_tenant: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    db::lifecycle::clear_failures(&mut *conn, partner_id).await?;
    let previous = db::lifecycle::lock_status(&mut *conn, partner_id)
        .await?
        .unwrap_or(PartnerStatus::Pending);
    let status = next_status(previous, Evidence::RefreshSucceeded);
    if status == previous {
        return Ok(false);
    }
    db::partners::set_status(&mut *conn, partner_id, status, None, None, now).await?;
    announce_recovery(conn, partner_tenant, previous.as_str(), now).await?;
    Ok(true)
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
        &Actor::System,
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

#[cfg(test)]
mod tests {
    use super::*;
    use Evidence::*;
    use PartnerStatus::*;

    /// Every (status, evidence) pair and the status it leads to, written out by hand so a change
    /// to `next_status` must change this table too.
    #[rustfmt::skip]
    const TABLE: &[(PartnerStatus, Evidence, PartnerStatus)] = &[
        (Pending, Consented, Healthy),
        (Pending, RefreshSucceeded, Pending),
        (Pending, ConsentRefused, Pending),
        (Pending, MfaRefused, Pending),
        (Pending, TransientFailures(5), Pending),
        (Pending, Offboarding, Offboarded),
        (Healthy, Consented, Healthy),
        (Healthy, RefreshSucceeded, Healthy),
        (Healthy, ConsentRefused, NeedsConsent),
        (Healthy, MfaRefused, MfaRequired),
        (Healthy, TransientFailures(1), Healthy),
        (Healthy, TransientFailures(2), Healthy),
        (Healthy, TransientFailures(3), Degraded),
        (Healthy, Offboarding, Offboarded),
        (Degraded, Consented, Healthy),
        (Degraded, RefreshSucceeded, Healthy),
        (Degraded, ConsentRefused, NeedsConsent),
        (Degraded, MfaRefused, MfaRequired),
        (Degraded, TransientFailures(7), Degraded),
        (Degraded, Offboarding, Offboarded),
        (NeedsConsent, Consented, Healthy),
        (NeedsConsent, RefreshSucceeded, Healthy),
        (NeedsConsent, ConsentRefused, NeedsConsent),
        (NeedsConsent, MfaRefused, MfaRequired),
        (NeedsConsent, TransientFailures(3), NeedsConsent),
        (NeedsConsent, Offboarding, Offboarded),
        (MfaRequired, Consented, Healthy),
        (MfaRequired, RefreshSucceeded, Healthy),
        (MfaRequired, ConsentRefused, NeedsConsent),
        (MfaRequired, MfaRefused, MfaRequired),
        (MfaRequired, TransientFailures(3), MfaRequired),
        (MfaRequired, Offboarding, Offboarded),
        (Offboarded, Consented, Healthy),
        (Offboarded, RefreshSucceeded, Offboarded),
        (Offboarded, ConsentRefused, Offboarded),
        (Offboarded, MfaRefused, Offboarded),
        (Offboarded, TransientFailures(3), Offboarded),
        (Offboarded, Offboarding, Offboarded),
    ];

    #[test]
    fn every_partner_transition_of_the_table_holds() {
        for (from, evidence, to) in TABLE {
            assert_eq!(next_status(*from, *evidence), *to, "{from} + {evidence:?}");
        }
        // Every status appears with every kind of evidence.
        for status in PartnerStatus::ALL {
            assert_eq!(
                TABLE.iter().filter(|(from, _, _)| *from == status).count(),
                if status == Healthy { 8 } else { 6 },
                "{status}"
            );
        }
    }

    #[test]
    fn only_consent_and_mfa_refusals_are_evidence_against_the_partner() {
        let classified = |code: u64| {
            crate::identity::errors::classify(
                400,
                &crate::identity::errors::TokenErrorBody {
                    error_codes: vec![code],
                    ..crate::identity::errors::TokenErrorBody::bare("invalid_grant")
                },
            )
        };
        assert_eq!(
            Evidence::of_refusal(&classified(700082)),
            Some(ConsentRefused)
        );
        assert_eq!(Evidence::of_refusal(&classified(50076)), Some(MfaRefused));
        for not_about_the_grant in [7000222, 90002, 53003, 90099, 50196] {
            assert_eq!(
                Evidence::of_refusal(&classified(not_about_the_grant)),
                None,
                "AADSTS{not_about_the_grant}"
            );
        }
    }
}
