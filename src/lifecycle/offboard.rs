//! Offboarding: optionally remove the CPV app's consent from every customer (while the grant can
//! still do it), then in one transaction delete the grant and its access tokens (crypto-shred:
//! the sealed bytes and the wrapped data key inside them go), revoke pending invitations, mark the
//! partner `offboarded`, and write the audit record and `partner.offboarded`.

use serde::Serialize;
use uuid::Uuid;

use crate::app::App;
use crate::broker::{BrokerError, Resource, TokenKey};
use crate::db;
use crate::domain::Actor;
use crate::partner_center::{ConsentRemoved, PartnerCenterError};
use crate::webhooks::{self, EventType};

/// What offboarding removed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OffboardReport {
    /// The partner's tenant.
    pub tenant_id: Uuid,
    /// Customers whose app consent was deleted now.
    pub app_consents_removed: Vec<Uuid>,
    /// Customers that had no consent left (404).
    pub app_consents_absent: Vec<Uuid>,
    /// Grant rows deleted (0 or 1).
    pub grants_deleted: u64,
    /// Shared access-token rows deleted.
    pub access_tokens_deleted: u64,
    /// Pending invitations revoked.
    pub invitations_revoked: Vec<Uuid>,
}

/// Why offboarding did not happen (nothing was destroyed in any of these cases).
#[derive(Debug, thiserror::Error)]
pub enum OffboardError {
    /// No partner has this tenant id.
    #[error("no partner has this tenant id")]
    NotFound,
    /// Already offboarded.
    #[error("the partner is already offboarded")]
    AlreadyOffboarded,
    /// App consents were asked to be removed, but no Partner Center token could be had.
    #[error(
        "cannot remove app consents without a working grant ({0}); offboard without removing them"
    )]
    Token(BrokerError),
    /// Partner Center refused or failed; the grant is kept so the removal can be retried.
    #[error("Partner Center failed while removing app consents: {0}")]
    PartnerCenter(PartnerCenterError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Offboards the partner with tenant `tenant_id` on behalf of `actor`.
pub async fn offboard(
    app: &App,
    tenant_id: Uuid,
    actor: &Actor,
    remove_app_consents: bool,
) -> Result<OffboardReport, OffboardError> {
    let partner = db::partners::find_by_tenant(&app.pool, tenant_id)
        .await?
        .ok_or(OffboardError::NotFound)?;
    if partner.status == "offboarded" {
        return Err(OffboardError::AlreadyOffboarded);
    }
    let mut report = OffboardReport {
        tenant_id,
        app_consents_removed: Vec::new(),
        app_consents_absent: Vec::new(),
        grants_deleted: 0,
        access_tokens_deleted: 0,
        invitations_revoked: Vec::new(),
    };
    if remove_app_consents {
        // Before the grant is destroyed: afterwards nothing could remove them.
        remove_consents(app, &partner, &mut report).await?;
    }

    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    // Grant before partner, the order the broker locks them in (no deadlock with a refresh).
    db::grants::lock(&mut *tx, partner.id).await?;
    if db::lifecycle::lock_status(&mut *tx, partner.id).await?
        == Some(crate::domain::PartnerStatus::Offboarded)
    {
        return Err(OffboardError::AlreadyOffboarded);
    }
    let shredded = db::lifecycle::shred_grant(&mut tx, partner.id).await?;
    report.grants_deleted = shredded.grants;
    report.access_tokens_deleted = shredded.access_tokens;
    report.invitations_revoked =
        db::lifecycle::revoke_partner_invitations(&mut *tx, partner.id, tenant_id, now).await?;
    db::lifecycle::mark_offboarded(&mut *tx, partner.id, now).await?;
    let details = serde_json::json!({
        "organization": partner.display_name,
        "previous_status": partner.status,
        "remove_app_consents": remove_app_consents,
        "app_consents_removed": report.app_consents_removed,
        "app_consents_absent": report.app_consents_absent,
        "grants_deleted": report.grants_deleted,
        "access_tokens_deleted": report.access_tokens_deleted,
        "invitations_revoked": report.invitations_revoked,
    });
    db::audit::record(
        &mut *tx,
        actor,
        "partner.offboarded",
        Some(tenant_id),
        details.clone(),
        now,
    )
    .await?;
    webhooks::enqueue(
        &mut *tx,
        EventType::PartnerOffboarded,
        Some(tenant_id),
        details,
        now,
    )
    .await?;
    tx.commit().await?;
    app.partners.invalidate(tenant_id).await;
    tracing::info!(
        partner.tenant_id = %tenant_id,
        app_consents_removed = report.app_consents_removed.len(),
        "partner offboarded"
    );
    Ok(report)
}

async fn remove_consents(
    app: &App,
    partner: &db::partners::Partner,
    report: &mut OffboardReport,
) -> Result<(), OffboardError> {
    let key = TokenKey {
        partner_id: partner.id,
        partner_tenant: partner.tenant_id,
        authority_tenant: partner.tenant_id,
        resource: Resource::PartnerCenter,
    };
    let app_id = db::grants::find(&app.pool, partner.id)
        .await?
        .map(|g| g.app_id)
        .unwrap_or_else(|| app.identity.client_id());
    // A cached token Partner Center refuses (expired early, revoked) is dropped and minted once more.
    let mut retried = false;
    loop {
        let token = app
            .broker
            .access_token(key)
            .await
            .map_err(OffboardError::Token)?;
        let result = async {
            let customers = app.partner_center.customer_ids(&token.secret).await?;
            for customer in customers {
                if report.app_consents_removed.contains(&customer)
                    || report.app_consents_absent.contains(&customer)
                {
                    continue;
                }
                match app
                    .partner_center
                    .remove_application_consent(&token.secret, customer, app_id)
                    .await?
                {
                    ConsentRemoved::Removed => report.app_consents_removed.push(customer),
                    ConsentRemoved::Absent => report.app_consents_absent.push(customer),
                }
            }
            Ok::<(), PartnerCenterError>(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(PartnerCenterError::TokenRejected { .. }) if !retried => {
                app.broker.forget(key).await;
                retried = true;
            }
            Err(err) => return Err(OffboardError::PartnerCenter(err)),
        }
    }
}
