//! The sign-in throttle shared by passwords and second-factor codes: each attempt is recorded,
//! under an advisory lock per account and per client address, *before* its secret is checked, so
//! parallel guesses see each other; a success withdraws its own record.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{ACCOUNT_FAILURE_LIMIT, ADDRESS_FAILURE_LIMIT, THROTTLE_WINDOW, log_hash};
use crate::db;

fn subject(kind: &str, value: &str) -> Vec<u8> {
    Sha256::digest(format!("samgate-login:{kind}:{value}")).to_vec()
}

/// One recorded attempt, counted as a failure until [`Attempt::succeeded`] or
/// [`Attempt::withdraw`].
pub(super) struct Attempt {
    ids: [i64; 2],
    account: Vec<u8>,
    account_failures: i64,
    address_failures: i64,
    /// [`log_hash`] of the sign-in name.
    pub(super) who: String,
    pub(super) address: IpAddr,
}

/// Records an attempt for `email` (normalised) from `address`, or `None` when either is over its
/// limit (then nothing may be checked).
pub(super) async fn begin(
    pool: &PgPool,
    email: &str,
    address: IpAddr,
    now: OffsetDateTime,
) -> Result<Option<Attempt>, sqlx::Error> {
    let account = subject("account", email);
    let client = subject("address", &address.to_string());
    let since = now - THROTTLE_WINDOW;
    let who = log_hash(email);
    let mut tx = pool.begin().await?;
    db::staff::lock_login_subject(&mut *tx, &account).await?;
    db::staff::lock_login_subject(&mut *tx, &client).await?;
    let account_failures = db::staff::count_login_failures(&mut *tx, &account, since).await?;
    let address_failures = db::staff::count_login_failures(&mut *tx, &client, since).await?;
    if account_failures >= ACCOUNT_FAILURE_LIMIT || address_failures >= ADDRESS_FAILURE_LIMIT {
        tx.commit().await?;
        tracing::warn!(staff.login = %who, client.address = %address, "staff sign-in blocked by the throttle");
        return Ok(None);
    }
    let ids = [
        db::staff::record_login_attempt(&mut *tx, &account, now, since).await?,
        db::staff::record_login_attempt(&mut *tx, &client, now, since).await?,
    ];
    tx.commit().await?;
    Ok(Some(Attempt {
        ids,
        account,
        account_failures,
        address_failures,
        who,
        address,
    }))
}

impl Attempt {
    /// The secret was right: the attempt is withdrawn, and with `forget_failures` the account's
    /// earlier failures too (only once the whole sign-in has succeeded, so that codes and the
    /// password share one budget).
    pub(super) async fn succeeded(
        self,
        pool: &PgPool,
        forget_failures: bool,
    ) -> Result<(), sqlx::Error> {
        db::staff::forget_login_attempt(pool, &self.ids).await?;
        if forget_failures {
            db::staff::clear_login_failures(pool, &self.account).await?;
        }
        Ok(())
    }

    /// Nothing was checked (samgate was too busy): the attempt does not count.
    pub(super) async fn withdraw(self, pool: &PgPool) -> Result<(), sqlx::Error> {
        db::staff::forget_login_attempt(pool, &self.ids).await
    }

    /// The secret was wrong: the record stays; logs the failure and the lock-out it may cause.
    pub(super) fn failed(&self, what: &'static str) {
        tracing::info!(staff.login = %self.who, client.address = %self.address, staff.factor = what, "staff sign-in failed");
        if self.account_failures + 1 == ACCOUNT_FAILURE_LIMIT
            || self.address_failures + 1 == ADDRESS_FAILURE_LIMIT
        {
            tracing::warn!(
                staff.login = %self.who,
                client.address = %self.address,
                throttle.window_minutes = THROTTLE_WINDOW.whole_minutes(),
                "staff sign-in locked out"
            );
        }
    }
}
