//! CPV staff accounts: roles, Argon2id passwords (verified off the async threads, a bounded number
//! at once), sign-in with a throttle per account and per client address that answers the same way
//! whether or not the account exists, the second factor of password accounts (required for
//! admins), and the account changes staff make (each with an audit event).

pub mod mfa;
mod password;
mod throttle;
pub mod totp;

use std::net::IpAddr;

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db;
use crate::db::staff::{NewStaff, StaffMember};
use crate::domain::Actor;

pub use password::{
    ARGON2_MAX_WAIT, Argon2Busy, Argon2Limit, PasswordError, generate_password, hash_password,
    verify_password,
};

/// Failed sign-ins for one account within [`THROTTLE_WINDOW`] before it is blocked.
pub const ACCOUNT_FAILURE_LIMIT: i64 = 5;
/// Failed sign-ins from one client address within [`THROTTLE_WINDOW`] before it is blocked.
pub const ADDRESS_FAILURE_LIMIT: i64 = 20;
/// The sliding window of the sign-in throttle.
pub const THROTTLE_WINDOW: time::Duration = time::Duration::minutes(15);
/// Longest password accepted (Argon2 cost does not depend on it, but bodies should stay small).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted when one is chosen rather than generated.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// What a staff member may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Partners, invitations, app consents.
    Operator,
    /// Everything, including staff.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The name stored in the database and shown in the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored or typed role name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text.trim())
    }

    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// Whether a password sign-in with this role needs a second factor even when the member has
    /// none yet (then the member must enrol before anything else). Admins can mint all-partner
    /// API keys and manage staff: their password alone is not enough. Other roles may enrol.
    pub fn requires_second_factor(self) -> bool {
        self == Self::Admin
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised (trimmed, lower-cased) staff email.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffEmail(String);

impl StaffEmail {
    /// Accepts `local@domain` with a dotted domain, at most 254 characters, no spaces.
    pub fn parse(text: &str) -> Option<Self> {
        let email = text.trim().to_lowercase();
        let (local, domain) = email.split_once('@')?;
        let valid = email.len() <= 254
            && !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        valid.then_some(Self(email))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Emails stay out of logs (docs/STYLE.md); Debug shows only the short hash.
impl std::fmt::Debug for StaffEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaffEmail({})", log_hash(&self.0))
    }
}

/// A short, stable pseudonym of an email for log lines (12 hex digits of SHA-256).
pub fn log_hash(email: &str) -> String {
    let digest = Sha256::digest(format!("samgate-staff:{}", email.trim().to_lowercase()));
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Failures of staff operations.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// The email is malformed.
    #[error("not a valid email address")]
    InvalidEmail,
    /// The name is empty or too long.
    #[error("the name must be 1 to 200 characters")]
    InvalidName,
    /// Another member has this email.
    #[error("a staff member with this email already exists")]
    EmailTaken,
    /// No such member.
    #[error("no such staff member")]
    NotFound,
    /// The change would leave no active admin.
    #[error("at least one active admin must remain")]
    LastAdmin,
    /// The chosen password is unacceptable.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The member already has a confirmed second factor (an admin must reset it first).
    #[error("a second factor is set up already")]
    MfaAlreadyOn,
    /// No second factor (or no pending enrolment) to check the code against.
    #[error("no second factor is being set up")]
    NoEnrolment,
    /// The code is wrong, used already, or the throttle refused to check it.
    #[error("the code is not right")]
    WrongCode,
    /// Sealing or opening the TOTP secret failed.
    #[error("vault: {0}")]
    Vault(#[from] crate::vault::VaultError),
    /// The TOTP secret could not be turned into a code or URI.
    #[error("totp: {0}")]
    Totp(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A request to create a staff member.
#[derive(Debug)]
pub struct NewStaffRequest<'a> {
    /// Sign-in email.
    pub email: &'a str,
    /// Display name (defaults to the part before `@`).
    pub display_name: Option<&'a str>,
    /// Role.
    pub role: Role,
    /// A chosen password; `None` generates one.
    pub password: Option<SecretString>,
    /// Audit actor (`cli`, `staff:<id>`).
    pub actor: &'a Actor,
}

/// Creates a staff member; returns it with the password (generated ones are shown once).
pub async fn add_staff(
    pool: &PgPool,
    request: NewStaffRequest<'_>,
    now: OffsetDateTime,
) -> Result<(StaffMember, SecretString), StaffError> {
    let email = StaffEmail::parse(request.email).ok_or(StaffError::InvalidEmail)?;
    let name = request
        .display_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| email.as_str().split('@').next().unwrap_or_default())
        .to_owned();
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(StaffError::InvalidName);
    }
    let password = match request.password {
        Some(chosen) => {
            password::check_chosen(&chosen)?;
            chosen
        }
        None => generate_password(),
    };
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))??
    };
    let mut tx = pool.begin().await?;
    let member = db::staff::insert(
        &mut *tx,
        &NewStaff {
            email: email.as_str(),
            display_name: &name,
            role: request.role.as_str(),
            password_hash: &hash,
        },
        now,
    )
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("staff_email_key") => {
            StaffError::EmailTaken
        }
        _ => StaffError::Database(e),
    })?;
    db::audit::record(
        &mut *tx,
        request.actor,
        "staff.created",
        None,
        serde_json::json!({ "staff_id": member.id, "display_name": member.display_name, "role": member.role }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((member, password))
}

/// Changes a member's role (ending their sessions); refuses to demote the last active admin.
pub async fn set_role(
    pool: &PgPool,
    id: Uuid,
    role: Role,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<StaffMember, StaffError> {
    let mut tx = pool.begin().await?;
    let admins = db::staff::lock_active_admins(&mut *tx).await?;
    let member = db::staff::find(&mut *tx, id)
        .await?
        .ok_or(StaffError::NotFound)?;
    if role != Role::Admin && admins == [id] {
        return Err(StaffError::LastAdmin);
    }
    db::staff::set_role(&mut *tx, id, role.as_str()).await?;
    db::audit::record(
        &mut *tx,
        actor,
        "staff.role_changed",
        None,
        serde_json::json!({ "staff_id": id, "from": member.role, "to": role.as_str() }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(member)
}

/// Disables a member (ending their sessions); refuses to disable the last active admin.
pub async fn disable_staff(
    pool: &PgPool,
    id: Uuid,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<(), StaffError> {
    let mut tx = pool.begin().await?;
    let admins = db::staff::lock_active_admins(&mut *tx).await?;
    if db::staff::find(&mut *tx, id).await?.is_none() {
        return Err(StaffError::NotFound);
    }
    if admins == [id] {
        return Err(StaffError::LastAdmin);
    }
    if db::staff::disable(&mut *tx, id, now).await? {
        db::audit::record(
            &mut *tx,
            actor,
            "staff.disabled",
            None,
            serde_json::json!({ "staff_id": id }),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Ends every session of a member ("log out everywhere").
pub async fn end_sessions(
    pool: &PgPool,
    id: Uuid,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<(), StaffError> {
    let mut tx = pool.begin().await?;
    if !db::staff::bump_epoch(&mut *tx, id).await? {
        return Err(StaffError::NotFound);
    }
    db::audit::record(
        &mut *tx,
        actor,
        "staff.sessions_ended",
        None,
        serde_json::json!({ "staff_id": id }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a correct password leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Nothing more: the member is signed in.
    SignedIn,
    /// The member has a second factor: a code (or recovery code) must follow.
    SecondFactor,
    /// The role needs a second factor the member does not have: enrol before anything else.
    Enrolment,
}

impl NextStep {
    /// The policy in one place: who must pass or set up a second factor after the password.
    pub fn after_password(role: Role, has_second_factor: bool) -> Self {
        match (has_second_factor, role.requires_second_factor()) {
            (true, _) => Self::SecondFactor,
            (false, true) => Self::Enrolment,
            (false, false) => Self::SignedIn,
        }
    }
}

/// The outcome of a sign-in attempt. Callers show one message for every refusal.
#[derive(Debug)]
pub enum SignIn {
    /// The password is right and the account is active; `next` says what must follow.
    Accepted {
        /// The member.
        member: StaffMember,
        /// What must follow before the session is signed in.
        next: NextStep,
    },
    /// Wrong email or password, or a disabled account.
    Refused,
    /// Too many recent failures for this account or address; the password was not checked.
    Blocked,
    /// Every Argon2 slot stayed busy: nothing was checked or counted; try again shortly.
    Busy,
}

/// Checks an email and password, applying the throttle and the Argon2 limit. Unknown emails cost
/// the same Argon2 verification as known ones, and failures are counted the same way for both.
pub async fn sign_in(
    pool: &PgPool,
    limit: &Argon2Limit,
    email: &str,
    password: SecretString,
    address: IpAddr,
    now: OffsetDateTime,
) -> Result<SignIn, StaffError> {
    let normalised = email.trim().to_lowercase();
    // The attempt is counted before the password is checked, under a lock per subject: parallel
    // guesses each see the ones before them, so the limits hold however many arrive at once.
    let Some(attempt) = throttle::begin(pool, &normalised, address, now).await? else {
        return Ok(SignIn::Blocked);
    };
    let credentials = match StaffEmail::parse(&normalised) {
        Some(email) => db::staff::find_credentials(pool, email.as_str()).await?,
        None => None,
    };
    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let checked = limit
        .run(move || match hash {
            Some(hash) => verify_password(&password, &hash),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await;
    let matches = match checked {
        Ok(matches) => matches?,
        Err(Argon2Busy) => {
            tracing::warn!(staff.login = %attempt.who, "staff sign-in refused: every Argon2 slot is busy");
            attempt.withdraw(pool).await?;
            return Ok(SignIn::Busy);
        }
    };
    match credentials {
        Some(c) if matches && c.member.disabled_at.is_none() => {
            let role = Role::parse(&c.member.role).unwrap_or(Role::Viewer);
            let next = NextStep::after_password(role, mfa::is_enabled(pool, c.member.id).await?);
            // With a second step to come, earlier failures stay counted: codes share the budget.
            attempt
                .succeeded(pool, next != NextStep::SecondFactor)
                .await?;
            if next == NextStep::SignedIn {
                db::staff::touch_login(pool, c.member.id, now).await?;
            }
            Ok(SignIn::Accepted {
                member: c.member,
                next,
            })
        }
        _ => {
            // The attempt recorded above stays: it was a failure.
            attempt.failed("password");
            Ok(SignIn::Refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn admins_need_a_second_factor_after_the_password_and_others_only_when_they_have_one() {
        use NextStep::{Enrolment, SecondFactor, SignedIn};
        for (role, has, next) in [
            (Role::Admin, false, Enrolment),
            (Role::Admin, true, SecondFactor),
            (Role::Operator, false, SignedIn),
            (Role::Operator, true, SecondFactor),
            (Role::Viewer, false, SignedIn),
            (Role::Viewer, true, SecondFactor),
        ] {
            assert_eq!(NextStep::after_password(role, has), next, "{role} {has}");
        }
    }

    #[test]
    fn emails_are_normalised_and_validated() {
        assert_eq!(
            StaffEmail::parse("  Ada@Example.COM ").map(|e| e.as_str().to_owned()),
            Some("ada@example.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@.com",
        ] {
            assert!(StaffEmail::parse(bad).is_none(), "{bad}");
        }
        let email = StaffEmail::parse("ada@example.com").expect("valid");
        assert!(!format!("{email:?}").contains("ada"));
    }
}
