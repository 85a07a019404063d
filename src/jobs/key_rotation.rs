//! Re-wraps every sealed refresh token, webhook secret and staff TOTP secret under the active KEK, in batches,
//! without ever decrypting them: only the data key is unwrapped and wrapped again. Cached access
//! tokens under an old KEK are dropped (they are re-minted on demand). Safe to run on several instances
//! (rows are claimed with `FOR UPDATE SKIP LOCKED`) and to interrupt (each batch commits).

use crate::app::App;
use crate::db;
use crate::onboarding::REFRESH_TOKEN_PURPOSE;
use crate::vault::SealContext;

/// Re-wraps until no sealed row is left under another KEK; returns how many rows changed.
pub async fn run(app: &App, batch: i64, mut progress: impl FnMut(u64)) -> anyhow::Result<u64> {
    let active = i32::try_from(app.vault.active_kek_id())?;
    db::grants::delete_access_tokens_not_under(&app.pool, active).await?;
    let mut done = rewrap_webhook_secrets(app, active, batch).await?;
    done += rewrap_staff_totp_secrets(app, active, batch).await?;
    loop {
        let mut tx = app.pool.begin().await?;
        let rows = db::grants::claim_for_rewrap(&mut *tx, active, batch).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(done);
        }
        for row in &rows {
            let tenant = row.tenant_id.to_string();
            let rewrapped = app.vault.rewrap(
                &row.sealed_refresh_token,
                &SealContext {
                    purpose: REFRESH_TOKEN_PURPOSE.as_str(),
                    row: &tenant,
                },
            )?;
            db::grants::rewrap(
                &mut *tx,
                row.partner_id,
                row.version,
                &rewrapped.bytes,
                i32::try_from(rewrapped.kek_id)?,
            )
            .await?;
            done += 1;
        }
        tx.commit().await?;
        progress(done);
    }
}

async fn rewrap_webhook_secrets(app: &App, active: i32, batch: i64) -> anyhow::Result<u64> {
    let mut done = 0u64;
    loop {
        let mut tx = app.pool.begin().await?;
        let rows = db::grants::claim_webhook_secrets_for_rewrap(&mut *tx, active, batch).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(done);
        }
        for (id, sealed) in &rows {
            let row = id.to_string();
            let rewrapped = app.vault.rewrap(
                sealed,
                &SealContext {
                    purpose: crate::webhooks::SECRET_PURPOSE.as_str(),
                    row: &row,
                },
            )?;
            db::grants::rewrap_webhook_secret(
                &mut *tx,
                *id,
                &rewrapped.bytes,
                i32::try_from(rewrapped.kek_id)?,
            )
            .await?;
            done += 1;
        }
        tx.commit().await?;
    }
}

async fn rewrap_staff_totp_secrets(app: &App, active: i32, batch: i64) -> anyhow::Result<u64> {
    let mut done = 0u64;
    loop {
        let mut tx = app.pool.begin().await?;
        let rows = db::staff::claim_mfa_for_rewrap(&mut *tx, active, batch).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(done);
        }
        for (staff_id, sealed) in &rows {
            let row = staff_id.to_string();
            let rewrapped = app.vault.rewrap(
                sealed,
                &SealContext {
                    purpose: crate::staff::mfa::TOTP_SECRET_PURPOSE.as_str(),
                    row: &row,
                },
            )?;
            db::staff::rewrap_mfa_secret(
                &mut *tx,
                *staff_id,
                &rewrapped.bytes,
                i32::try_from(rewrapped.kek_id)?,
            )
            .await?;
            done += 1;
        }
        tx.commit().await?;
    }
}
