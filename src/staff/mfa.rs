//! The second factor of password accounts: enrolment (a sealed secret, confirmed with a current
//! code), the second sign-in step (a TOTP code once per time step, or a single-use recovery code,
//! both counted by the password throttle), recovery-code regeneration and the admin reset. Every
//! failure and change is audited, without secrets.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::totp::{self, TotpSecret, TypedCode};
use super::{StaffError, throttle};
use crate::db;
use crate::db::staff::StaffMember;
use crate::domain::Actor;
use crate::vault::{SealContext, Vault};

/// The vault purpose of a staff member's TOTP secret; the row is the member's id.
pub const TOTP_SECRET_PURPOSE: crate::vault::Purpose = crate::vault::Purpose::StaffTotpSecret;

/// A member's second factor, as the account page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaStatus {
    /// No TOTP secret (or one shown but never confirmed).
    Off,
    /// A confirmed TOTP secret.
    On {
        /// Recovery codes not used yet.
        recovery_codes_left: i64,
    },
}

/// A secret being enrolled: shown to the member once, then only its sealed form exists.
pub struct Enrolment {
    /// The secret in base32, for typing into an authenticator app.
    pub secret: SecretString,
    /// The `otpauth://` URI, for apps that import one.
    pub uri: SecretString,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment([redacted])")
    }
}

/// Freshly made recovery codes (shown once).
pub struct RecoveryCodes(pub Vec<SecretString>);

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes({} [redacted])", self.0.len())
    }
}

/// How a second step was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// A TOTP code.
    Totp,
    /// A recovery code (used up now).
    RecoveryCode,
}

impl Factor {
    /// The sign-in method recorded in the audit log.
    pub fn sign_in_method(self) -> &'static str {
        match self {
            Self::Totp => "password+totp",
            Self::RecoveryCode => "password+recovery_code",
        }
    }
}

/// The outcome of a second step. Callers show one message for every refusal.
#[derive(Debug)]
pub enum SecondStep {
    /// The code is right: the sign-in is complete.
    Accepted(StaffMember, Factor),
    /// Wrong, replayed or malformed code; or the account is disabled or has no second factor.
    Refused,
    /// Too many recent failures for this account or address; the code was not checked.
    Blocked,
}

fn context(staff_id: &str) -> SealContext<'_> {
    SealContext::new(TOTP_SECRET_PURPOSE, staff_id)
}

async fn audit(
    pool: &PgPool,
    staff_id: Uuid,
    actor: &Actor,
    action: &str,
    mut details: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StaffError> {
    details["staff_id"] = serde_json::json!(staff_id);
    db::audit::record(pool, actor, action, None, details, now).await?;
    Ok(())
}

fn own(staff_id: Uuid) -> Actor {
    Actor::Staff(staff_id)
}

/// The member's second factor.
pub async fn status(pool: &PgPool, staff_id: Uuid) -> Result<MfaStatus, StaffError> {
    match db::staff::find_mfa(pool, staff_id).await? {
        Some(row) if row.confirmed_at.is_some() => Ok(MfaStatus::On {
            recovery_codes_left: db::staff::count_unused_recovery_codes(pool, staff_id).await?,
        }),
        _ => Ok(MfaStatus::Off),
    }
}

/// Whether the member has a confirmed second factor.
pub async fn is_enabled(pool: &PgPool, staff_id: Uuid) -> Result<bool, StaffError> {
    Ok(db::staff::find_mfa(pool, staff_id)
        .await?
        .is_some_and(|row| row.confirmed_at.is_some()))
}

/// Draws a new secret for `staff_id` and stores it sealed and unconfirmed (replacing an
/// unconfirmed one). Refused with [`StaffError::MfaAlreadyOn`] when one is confirmed: a new
/// secret needs an admin's reset first. `issuer` names samgate in the authenticator app.
pub async fn begin_enrolment(
    pool: &PgPool,
    vault: &Vault,
    staff_id: Uuid,
    issuer: &str,
    now: OffsetDateTime,
) -> Result<Enrolment, StaffError> {
    let member = db::staff::find(pool, staff_id)
        .await?
        .ok_or(StaffError::NotFound)?;
    let secret = TotpSecret::generate();
    let row = staff_id.to_string();
    let sealed = vault.seal(secret.expose_bytes(), &context(&row))?;
    let kek = i32::try_from(sealed.kek_id).map_err(|_| StaffError::Totp("KEK id".into()))?;
    if !db::staff::put_pending_mfa(pool, staff_id, &sealed.bytes, kek, now).await? {
        return Err(StaffError::MfaAlreadyOn);
    }
    let uri = secret
        .otpauth_uri(issuer, &member.email)
        .map_err(StaffError::Totp)?;
    Ok(Enrolment {
        secret: secret.base32(),
        uri,
    })
}

fn open_secret(
    vault: &Vault,
    staff_id: Uuid,
    row: &db::staff::MfaRow,
) -> Result<TotpSecret, StaffError> {
    let id = staff_id.to_string();
    let bytes = vault.open(&row.sealed_secret, &context(&id))?;
    TotpSecret::from_bytes(&bytes)
        .ok_or_else(|| StaffError::Totp("stored secret has the wrong length".into()))
}

/// Confirms the pending secret with a current code; returns the new recovery codes (shown once).
/// A wrong code is audited and refused with [`StaffError::WrongCode`].
pub async fn confirm_enrolment(
    pool: &PgPool,
    vault: &Vault,
    staff_id: Uuid,
    code: &str,
    now: OffsetDateTime,
) -> Result<RecoveryCodes, StaffError> {
    let row = match db::staff::find_mfa(pool, staff_id).await? {
        Some(row) if row.confirmed_at.is_none() => row,
        Some(_) => return Err(StaffError::MfaAlreadyOn),
        None => return Err(StaffError::NoEnrolment),
    };
    let secret = open_secret(vault, staff_id, &row)?;
    let Some(step) = secret
        .matching_step(code, now.unix_timestamp())
        .and_then(|s| i64::try_from(s).ok())
    else {
        audit(
            pool,
            staff_id,
            &own(staff_id),
            "staff.mfa_enrolment_failed",
            serde_json::json!({}),
            now,
        )
        .await?;
        return Err(StaffError::WrongCode);
    };
    let codes = totp::generate_recovery_codes();
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|c| totp::recovery_code_hash(staff_id, c))
        .collect();
    let mut tx = pool.begin().await?;
    if !db::staff::confirm_mfa(&mut *tx, staff_id, step, now).await? {
        return Err(StaffError::NoEnrolment);
    }
    db::staff::replace_recovery_codes(&mut *tx, staff_id, &hashes, now).await?;
    db::audit::record(
        &mut *tx,
        &own(staff_id),
        "staff.mfa_enrolled",
        None,
        serde_json::json!({ "staff_id": staff_id, "recovery_codes": codes.len() }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(RecoveryCodes(codes))
}

/// Checks a TOTP code against a confirmed secret and uses up its time step (so it works once);
/// re-wraps the secret when it is under an old KEK. No throttle: callers count the attempt.
async fn check_totp(
    pool: &PgPool,
    vault: &Vault,
    staff_id: Uuid,
    code: &str,
    now: OffsetDateTime,
) -> Result<bool, StaffError> {
    let Some(row) = db::staff::find_mfa(pool, staff_id)
        .await?
        .filter(|r| r.confirmed_at.is_some())
    else {
        return Ok(false);
    };
    let secret = open_secret(vault, staff_id, &row)?;
    let Some(step) = secret
        .matching_step(code, now.unix_timestamp())
        .and_then(|s| i64::try_from(s).ok())
    else {
        return Ok(false);
    };
    if !db::staff::use_totp_step(pool, staff_id, step).await? {
        return Ok(false);
    }
    if vault.needs_rewrap(&row.sealed_secret).unwrap_or(false) {
        let id = staff_id.to_string();
        let rewrapped = vault.rewrap(&row.sealed_secret, &context(&id))?;
        let kek = i32::try_from(rewrapped.kek_id).map_err(|_| StaffError::Totp("KEK id".into()))?;
        db::staff::rewrap_mfa_secret(pool, staff_id, &rewrapped.bytes, kek).await?;
    }
    Ok(true)
}

/// The second sign-in step of `staff_id` (whose password was right): a TOTP code or a recovery
/// code, counted by the same throttle as passwords (recorded before it is checked). Failures are
/// audited; the account's earlier failures are forgotten only when this step succeeds.
pub async fn verify_second_step(
    pool: &PgPool,
    vault: &Vault,
    staff_id: Uuid,
    typed: &str,
    address: IpAddr,
    now: OffsetDateTime,
) -> Result<SecondStep, StaffError> {
    let Some(member) = db::staff::find(pool, staff_id).await? else {
        return Ok(SecondStep::Refused);
    };
    let Some(attempt) = throttle::begin(pool, &member.email, address, now).await? else {
        return Ok(SecondStep::Blocked);
    };
    let typed = if member.disabled_at.is_none() {
        TypedCode::parse(typed)
    } else {
        TypedCode::Malformed
    };
    let (factor, accepted) = match typed {
        TypedCode::Totp(code) => (
            Some(Factor::Totp),
            check_totp(pool, vault, staff_id, &code, now).await?,
        ),
        TypedCode::Recovery(code) => {
            let hash = totp::recovery_code_hash(staff_id, &code);
            let used = is_enabled(pool, staff_id).await?
                && db::staff::use_recovery_code(pool, staff_id, &hash, now).await?;
            (Some(Factor::RecoveryCode), used)
        }
        TypedCode::Malformed => (None, false),
    };
    match factor {
        Some(factor) if accepted => {
            attempt.succeeded(pool, true).await?;
            db::staff::touch_login(pool, staff_id, now).await?;
            if factor == Factor::RecoveryCode {
                let left = db::staff::count_unused_recovery_codes(pool, staff_id).await?;
                audit(
                    pool,
                    staff_id,
                    &own(staff_id),
                    "staff.recovery_code_used",
                    serde_json::json!({ "recovery_codes_left": left }),
                    now,
                )
                .await?;
            }
            Ok(SecondStep::Accepted(member, factor))
        }
        _ => {
            attempt.failed("second_factor");
            let method = match factor {
                Some(Factor::Totp) => "totp",
                Some(Factor::RecoveryCode) => "recovery_code",
                None => "malformed",
            };
            audit(
                pool,
                staff_id,
                &own(staff_id),
                "staff.mfa_failed",
                serde_json::json!({ "method": method }),
                now,
            )
            .await?;
            Ok(SecondStep::Refused)
        }
    }
}

/// Replaces the member's recovery codes after a current TOTP code (so a borrowed session alone
/// cannot mint new ones); the code is throttled like a sign-in and works once.
pub async fn regenerate_recovery_codes(
    pool: &PgPool,
    vault: &Vault,
    staff_id: Uuid,
    code: &str,
    address: IpAddr,
    now: OffsetDateTime,
) -> Result<RecoveryCodes, StaffError> {
    let member = db::staff::find(pool, staff_id)
        .await?
        .ok_or(StaffError::NotFound)?;
    if !is_enabled(pool, staff_id).await? {
        return Err(StaffError::NoEnrolment);
    }
    let Some(attempt) = throttle::begin(pool, &member.email, address, now).await? else {
        return Err(StaffError::WrongCode);
    };
    let accepted = match TypedCode::parse(code) {
        TypedCode::Totp(code) => check_totp(pool, vault, staff_id, &code, now).await?,
        _ => false,
    };
    if !accepted {
        attempt.failed("second_factor");
        audit(
            pool,
            staff_id,
            &own(staff_id),
            "staff.mfa_failed",
            serde_json::json!({ "method": "totp", "for": "recovery_codes" }),
            now,
        )
        .await?;
        return Err(StaffError::WrongCode);
    }
    attempt.succeeded(pool, true).await?;
    let codes = totp::generate_recovery_codes();
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|c| totp::recovery_code_hash(staff_id, c))
        .collect();
    let mut tx = pool.begin().await?;
    db::staff::replace_recovery_codes(&mut *tx, staff_id, &hashes, now).await?;
    db::audit::record(
        &mut *tx,
        &own(staff_id),
        "staff.recovery_codes_regenerated",
        None,
        serde_json::json!({ "staff_id": staff_id, "recovery_codes": codes.len() }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(RecoveryCodes(codes))
}

/// Removes a member's second factor (a lost phone, a lock-out) and ends their sessions: at the
/// next password sign-in an admin must enrol again. Returns whether there was one; audited when so.
pub async fn reset_mfa(
    pool: &PgPool,
    staff_id: Uuid,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<bool, StaffError> {
    let mut tx = pool.begin().await?;
    if db::staff::find(&mut *tx, staff_id).await?.is_none() {
        return Err(StaffError::NotFound);
    }
    let removed = db::staff::delete_mfa(&mut *tx, staff_id).await?;
    if removed {
        db::audit::record(
            &mut *tx,
            actor,
            "staff.mfa_reset",
            None,
            serde_json::json!({ "staff_id": staff_id }),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(removed)
}

/// Enrols `staff_id` in one go, for the demo and for tests that need an enrolled member: the
/// real enrolment, confirmed with the previous step's code (within the skew), so that the current
/// code still signs in. Returns the base32 secret and the recovery codes.
pub async fn enrol_now(
    pool: &PgPool,
    vault: &Vault,
    staff_id: Uuid,
    issuer: &str,
    now: OffsetDateTime,
) -> Result<(SecretString, RecoveryCodes), StaffError> {
    let enrolment = begin_enrolment(pool, vault, staff_id, issuer, now).await?;
    let step = time::Duration::seconds(i64::try_from(totp::STEP_SECONDS).unwrap_or(30));
    let code = code_for(&enrolment.secret, now - step).ok_or(StaffError::WrongCode)?;
    let codes = confirm_enrolment(pool, vault, staff_id, &code, now).await?;
    Ok((enrolment.secret, codes))
}

/// The current code of a base32 secret (what an authenticator app would show at `now`).
pub fn code_for(base32_secret: &SecretString, now: OffsetDateTime) -> Option<String> {
    let raw = totp_rs::Secret::try_from_base32(base32_secret.expose_secret()).ok()?;
    let bytes = secrecy::SecretBox::from(raw.as_bytes().to_vec().into_boxed_slice());
    TotpSecret::from_bytes(&bytes)?.code_at(now.unix_timestamp())
}
