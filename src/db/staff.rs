//! The `staff`, `staff_login_failures`, `staff_mfa` and `staff_recovery_codes` tables, and the read models of the admin UI (partners
//! listing, dashboard counts, audit search): keyset-paged, never `OFFSET`, never a `count(*)` over
//! everything per page.

use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Actor;

/// A staff member (the password hash stays in [`find_credentials`]).
#[derive(Debug, Clone, FromRow)]
pub struct StaffMember {
    /// Id.
    pub id: Uuid,
    /// Lower-cased email (sign-in name).
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Set when disabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// Sessions carrying another epoch are void.
    pub session_epoch: i32,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last successful sign-in.
    pub last_login_at: Option<OffsetDateTime>,
}

const COLUMNS: &str =
    "id, email, display_name, role, disabled_at, session_epoch, created_at, last_login_at";

/// A new staff member's row.
#[derive(Debug)]
pub struct NewStaff<'a> {
    /// Lower-cased email.
    pub email: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Role name.
    pub role: &'a str,
    /// Argon2id PHC string.
    pub password_hash: &'a str,
}

/// Inserts a staff member; a taken email fails on constraint `staff_email_key`.
pub async fn insert(
    executor: impl PgExecutor<'_>,
    new: &NewStaff<'_>,
    now: OffsetDateTime,
) -> Result<StaffMember, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO staff (id, email, display_name, role, password_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.email)
    .bind(new.display_name)
    .bind(new.role)
    .bind(new.password_hash)
    .bind(now)
    .fetch_one(executor)
    .await
}

/// The staff member with this id.
pub async fn find(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<StaffMember>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM staff WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await
}

/// The staff member with this (lower-cased) email.
pub async fn find_by_email(
    executor: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<StaffMember>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM staff WHERE email = $1"))
        .bind(email)
        .fetch_optional(executor)
        .await
}

/// The staff member bound to this Microsoft account (object id in the CPV tenant).
pub async fn find_by_sso_oid(
    executor: impl PgExecutor<'_>,
    oid: Uuid,
) -> Result<Option<StaffMember>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM staff WHERE sso_oid = $1"))
        .bind(oid)
        .fetch_optional(executor)
        .await
}

/// The Microsoft account a staff member is bound to, if any.
pub async fn sso_oid(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT sso_oid FROM staff WHERE id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await
        .map(Option::flatten)
}

/// Binds a staff member to a Microsoft account unless it is bound already. True when bound now.
pub async fn bind_sso_oid(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    oid: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE staff SET sso_oid = $2 WHERE id = $1 AND sso_oid IS NULL")
        .bind(id)
        .bind(oid)
        .execute(executor)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A staff member with the password hash, for sign-in only.
#[derive(FromRow)]
pub struct Credentials {
    /// The member.
    #[sqlx(flatten)]
    pub member: StaffMember,
    /// Argon2id PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("member", &self.member)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// The member with this email and their password hash.
pub async fn find_credentials(
    executor: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS}, password_hash FROM staff WHERE email = $1"
    ))
    .bind(email)
    .fetch_optional(executor)
    .await
}

/// All staff, by email.
pub async fn list(executor: impl PgExecutor<'_>) -> Result<Vec<StaffMember>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM staff ORDER BY email"))
        .fetch_all(executor)
        .await
}

/// Records a successful sign-in.
pub async fn touch_login(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET last_login_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(executor)
        .await?;
    Ok(())
}

/// Ends every session of the member (bumps the epoch); false when there is no such member.
pub async fn bump_epoch(executor: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE staff SET session_epoch = session_epoch + 1 WHERE id = $1")
        .bind(id)
        .execute(executor)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the role and ends the member's sessions; false when there is no such member.
pub async fn set_role(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    role: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE staff SET role = $2, session_epoch = session_epoch + 1 WHERE id = $1")
            .bind(id)
            .bind(role)
            .execute(executor)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables the member and ends their sessions; false when absent or already disabled.
pub async fn disable(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff SET disabled_at = $2, session_epoch = session_epoch + 1
         WHERE id = $1 AND disabled_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Locks the active admins' rows and returns their ids (call inside the transaction that may
/// demote or disable one, so two concurrent changes cannot remove the last admin).
pub async fn lock_active_admins(executor: impl PgExecutor<'_>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM staff WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id FOR UPDATE",
    )
    .fetch_all(executor)
    .await
}

/// Failed sign-ins for `subject` at or after `since`.
pub async fn count_login_failures(
    executor: impl PgExecutor<'_>,
    subject: &[u8],
    since: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM staff_login_failures WHERE subject = $1 AND failed_at >= $2",
    )
    .bind(subject)
    .bind(since)
    .fetch_one(executor)
    .await
}

/// Serialises sign-in attempts for `subject` until the transaction ends (an advisory lock), so
/// counting and recording an attempt is one step however many arrive at once.
pub async fn lock_login_subject(
    executor: impl PgExecutor<'_>,
    subject: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), 7))")
        .bind(subject)
        .execute(executor)
        .await?;
    Ok(())
}

/// Records an attempt for `subject` (counted as a failure until [`forget_login_attempt`]),
/// dropping its rows older than `forget_before`; returns the attempt's id.
pub async fn record_login_attempt(
    executor: impl PgExecutor<'_>,
    subject: &[u8],
    now: OffsetDateTime,
    forget_before: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "WITH forgotten AS (
            DELETE FROM staff_login_failures WHERE subject = $1 AND failed_at < $3
         )
         INSERT INTO staff_login_failures (subject, failed_at) VALUES ($1, $2) RETURNING id",
    )
    .bind(subject)
    .bind(now)
    .bind(forget_before)
    .fetch_one(executor)
    .await
}

/// Withdraws recorded attempts (the attempt succeeded).
pub async fn forget_login_attempt(
    executor: impl PgExecutor<'_>,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_login_failures WHERE id = ANY($1)")
        .bind(ids)
        .execute(executor)
        .await?;
    Ok(())
}

/// Forgets the failures of `subject` (after a successful sign-in).
pub async fn clear_login_failures(
    executor: impl PgExecutor<'_>,
    subject: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_login_failures WHERE subject = $1")
        .bind(subject)
        .execute(executor)
        .await?;
    Ok(())
}

// ---- Second factor ---------------------------------------------------------------------------

/// A member's TOTP enrolment (the secret stays sealed).
#[derive(Clone, FromRow)]
pub struct MfaRow {
    /// The vault-sealed secret.
    pub sealed_secret: Vec<u8>,
    /// The KEK that wraps it.
    pub kek_id: i32,
    /// Set once the member confirmed the secret with a code; `None` while pending.
    pub confirmed_at: Option<OffsetDateTime>,
    /// The last accepted time step.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for MfaRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRow")
            .field("kek_id", &self.kek_id)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// The member's TOTP enrolment, if any.
pub async fn find_mfa(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
) -> Result<Option<MfaRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sealed_secret, kek_id, confirmed_at, last_step FROM staff_mfa WHERE staff_id = $1",
    )
    .bind(staff_id)
    .fetch_optional(executor)
    .await
}

/// Stores a new, unconfirmed secret (replacing an unconfirmed one); false when the member has a
/// confirmed one.
pub async fn put_pending_mfa(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
    sealed_secret: &[u8],
    kek_id: i32,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO staff_mfa (staff_id, sealed_secret, kek_id, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (staff_id) DO UPDATE
            SET sealed_secret = EXCLUDED.sealed_secret, kek_id = EXCLUDED.kek_id,
                created_at = EXCLUDED.created_at, last_step = NULL
          WHERE staff_mfa.confirmed_at IS NULL",
    )
    .bind(staff_id)
    .bind(sealed_secret)
    .bind(kek_id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Confirms a pending secret with the step of the code that proved it; false when there is no
/// pending secret.
pub async fn confirm_mfa(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
    step: i64,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff_mfa SET confirmed_at = $3, last_step = $2
         WHERE staff_id = $1 AND confirmed_at IS NULL",
    )
    .bind(staff_id)
    .bind(step)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Accepts time step `step` for a confirmed secret unless it (or a later one) was accepted
/// already: one atomic compare-and-set, so a code works once even when sent twice at once.
pub async fn use_totp_step(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff_mfa SET last_step = $2
         WHERE staff_id = $1 AND confirmed_at IS NOT NULL
           AND (last_step IS NULL OR last_step < $2)",
    )
    .bind(staff_id)
    .bind(step)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a secret re-wrapped under another KEK (same secret).
pub async fn rewrap_mfa_secret(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
    sealed_secret: &[u8],
    kek_id: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff_mfa SET sealed_secret = $2, kek_id = $3 WHERE staff_id = $1")
        .bind(staff_id)
        .bind(sealed_secret)
        .bind(kek_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Up to `limit` TOTP secrets not under `kek_id`, locked and skipping rows others hold.
pub async fn claim_mfa_for_rewrap(
    executor: impl PgExecutor<'_>,
    kek_id: i32,
    limit: i64,
) -> Result<Vec<(Uuid, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT staff_id, sealed_secret FROM staff_mfa WHERE kek_id <> $1
         ORDER BY staff_id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(kek_id)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Removes the member's secret and recovery codes and ends their sessions; true when there was
/// something to remove.
pub async fn delete_mfa(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let removed: i64 = sqlx::query_scalar(
        "WITH secret AS (DELETE FROM staff_mfa WHERE staff_id = $1 RETURNING 1),
              codes AS (DELETE FROM staff_recovery_codes WHERE staff_id = $1 RETURNING 1),
              epoch AS (UPDATE staff SET session_epoch = session_epoch + 1 WHERE id = $1)
         SELECT (SELECT count(*) FROM secret) + (SELECT count(*) FROM codes)",
    )
    .bind(staff_id)
    .fetch_one(executor)
    .await?;
    Ok(removed > 0)
}

/// Replaces the member's recovery codes with these hashes.
pub async fn replace_recovery_codes(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
    hashes: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM staff_recovery_codes WHERE staff_id = $1)
         INSERT INTO staff_recovery_codes (staff_id, code_hash, created_at)
         SELECT $1, hash, $3 FROM unnest($2::bytea[]) AS hash",
    )
    .bind(staff_id)
    .bind(hashes)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Uses up the member's recovery code with this hash; false when unknown or used already.
pub async fn use_recovery_code(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
    code_hash: &[u8],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff_recovery_codes SET used_at = $3
         WHERE staff_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(staff_id)
    .bind(code_hash)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The member's recovery codes not used yet.
pub async fn count_unused_recovery_codes(
    executor: impl PgExecutor<'_>,
    staff_id: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM staff_recovery_codes WHERE staff_id = $1 AND used_at IS NULL",
    )
    .bind(staff_id)
    .fetch_one(executor)
    .await
}

/// The members with a confirmed second factor.
pub async fn with_confirmed_mfa(executor: impl PgExecutor<'_>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT staff_id FROM staff_mfa WHERE confirmed_at IS NOT NULL")
        .fetch_all(executor)
        .await
}

// ---- Read models of the admin UI -------------------------------------------------------------

/// Partners per status.
pub async fn count_partners_by_status(
    executor: impl PgExecutor<'_>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, count(*) FROM partners GROUP BY status")
        .fetch_all(executor)
        .await
}

/// Invitations that can still be used at `now`.
pub async fn count_pending_invitations(
    executor: impl PgExecutor<'_>,
    now: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM invitations
         WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .fetch_one(executor)
    .await
}

/// One row of the partners list.
#[derive(Debug, Clone, FromRow)]
pub struct PartnerRow {
    /// samgate's id (also the page cursor).
    pub id: Uuid,
    /// Microsoft tenant.
    pub tenant_id: Uuid,
    /// Organisation.
    pub display_name: String,
    /// Default domain.
    pub domain: Option<String>,
    /// Health.
    pub status: crate::domain::PartnerStatus,
    /// Why.
    pub status_reason: Option<String>,
    /// Microsoft code.
    pub status_code: Option<String>,
    /// When the status changed.
    pub status_changed_at: OffsetDateTime,
    /// Last successful refresh of the grant.
    pub refreshed_at: Option<OffsetDateTime>,
    /// Last use of the grant.
    pub last_used_at: Option<OffsetDateTime>,
}

const PARTNER_ROW: &str = "SELECT p.id, p.tenant_id, p.display_name, p.domain, p.status, \
     p.status_reason, p.status_code, p.status_changed_at, g.refreshed_at, g.last_used_at \
     FROM partners p LEFT JOIN grants g ON g.partner_id = p.id";

/// Partners whose grant is in trouble, most recent change first.
pub async fn failing_partners(
    executor: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<PartnerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{PARTNER_ROW} WHERE p.status IN ('needs_consent', 'mfa_required', 'degraded')
         ORDER BY p.status_changed_at DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// What the partners list is filtered by.
#[derive(Debug, Default)]
pub struct PartnerFilter<'a> {
    /// Substring of the name or domain.
    pub text: Option<&'a str>,
    /// Exact tenant id.
    pub tenant_id: Option<Uuid>,
    /// Exact status.
    pub status: Option<&'a str>,
    /// The order of the rows.
    pub sort: PartnerSort,
    /// Rows after this partner in the order of `sort`.
    pub after: Option<Uuid>,
}

/// An order of the partners list. Each ends in the partner id, so it is total and keyset pages
/// neither skip nor repeat a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PartnerSort {
    /// By name (A to Z).
    #[default]
    Name,
    /// Most troubled status first, then by name.
    Status,
    /// Most recently refreshed first; never refreshed last.
    Refreshed,
    /// Most recently used first; never used last.
    Used,
}

impl PartnerSort {
    /// The columns of the sort key of partners `p` left-joined to grants `g`.
    fn columns(self, p: &str, g: &str) -> Vec<String> {
        let name = [format!("{p}.display_name"), format!("{p}.id")];
        match self {
            Self::Name => name.to_vec(),
            Self::Status => {
                let rank = format!(
                    "CASE {p}.status WHEN 'degraded' THEN 0 WHEN 'needs_consent' THEN 1 \
                     WHEN 'mfa_required' THEN 2 WHEN 'pending' THEN 3 WHEN 'healthy' THEN 4 \
                     ELSE 5 END"
                );
                [rank].into_iter().chain(name).collect()
            }
            Self::Refreshed => vec![
                format!("COALESCE({g}.refreshed_at, '-infinity'::timestamptz)"),
                format!("{p}.id"),
            ],
            Self::Used => vec![
                format!("COALESCE({g}.last_used_at, '-infinity'::timestamptz)"),
                format!("{p}.id"),
            ],
        }
    }

    /// Newest first.
    fn descending(self) -> bool {
        matches!(self, Self::Refreshed | Self::Used)
    }
}

/// One page of partners in the filter's order, starting after the cursor.
pub async fn list_partners(
    executor: impl PgExecutor<'_>,
    filter: &PartnerFilter<'_>,
    limit: i64,
) -> Result<Vec<PartnerRow>, sqlx::Error> {
    // With a text filter, the trigram indexes find the matches first and only the page is
    // sorted and joined; ordering by name first would walk the whole name index (BENCHMARKS.md).
    if filter.sort != PartnerSort::Name {
        return list_partners_sorted(executor, filter, limit).await;
    }
    let mut query: QueryBuilder<'_, Postgres> = if filter.text.is_some() {
        QueryBuilder::new("WITH m AS MATERIALIZED (SELECT p.id, p.display_name FROM partners p")
    } else {
        QueryBuilder::new(PARTNER_ROW)
    };
    push_partner_filter(&mut query, filter);
    if let Some(after) = filter.after {
        query
            .push(
                " AND (p.display_name, p.id) > (SELECT display_name, id FROM partners WHERE id = ",
            )
            .push_bind(after)
            .push(")");
    }
    if filter.text.is_some() {
        query
            .push("), top AS (SELECT id FROM m ORDER BY display_name, id LIMIT ")
            .push_bind(limit)
            .push(") ")
            .push(PARTNER_ROW.replacen(
                "FROM partners p",
                "FROM top JOIN partners p ON p.id = top.id",
                1,
            ))
            .push(" ORDER BY p.display_name, p.id");
    } else {
        query
            .push(" ORDER BY p.display_name, p.id LIMIT ")
            .push_bind(limit);
    }
    query.build_query_as().fetch_all(executor).await
}

/// [`list_partners`] in an order other than by name: the filter, then the order's key (no index
/// serves these orders, so the matches are sorted whatever the filter).
async fn list_partners_sorted(
    executor: impl PgExecutor<'_>,
    filter: &PartnerFilter<'_>,
    limit: i64,
) -> Result<Vec<PartnerRow>, sqlx::Error> {
    let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(PARTNER_ROW);
    push_partner_filter(&mut query, filter);
    if let Some(after) = filter.after {
        let comparison = if filter.sort.descending() { "<" } else { ">" };
        query
            .push(format!(
                " AND ({}) {comparison} (SELECT {} FROM partners c LEFT JOIN grants cg \
                 ON cg.partner_id = c.id WHERE c.id = ",
                filter.sort.columns("p", "g").join(", "),
                filter.sort.columns("c", "cg").join(", "),
            ))
            .push_bind(after)
            .push(")");
    }
    let direction = if filter.sort.descending() {
        " DESC"
    } else {
        ""
    };
    let order: Vec<String> = filter
        .sort
        .columns("p", "g")
        .into_iter()
        .map(|column| format!("{column}{direction}"))
        .collect();
    query
        .push(format!(" ORDER BY {} LIMIT ", order.join(", ")))
        .push_bind(limit);
    query.build_query_as().fetch_all(executor).await
}

/// ` WHERE …` of the partners list's status, tenant and text filters.
fn push_partner_filter<'q>(query: &mut QueryBuilder<'q, Postgres>, filter: &PartnerFilter<'q>) {
    query.push(" WHERE TRUE");
    if let Some(status) = filter.status {
        query.push(" AND p.status = ").push_bind(status);
    }
    if let Some(tenant_id) = filter.tenant_id {
        query.push(" AND p.tenant_id = ").push_bind(tenant_id);
    }
    if let Some(text) = filter.text {
        let pattern = format!("%{}%", escape_like(text));
        query
            .push(" AND (p.display_name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR p.domain ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
}

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// One audit row, with the staff member's name when the actor is `staff:<id>`.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    /// Sequence (the page cursor).
    pub id: i64,
    /// When.
    pub occurred_at: OffsetDateTime,
    /// Who.
    pub actor: Actor,
    /// The staff member's name, if the actor is staff.
    pub actor_name: Option<String>,
    /// What.
    pub action: String,
    /// Which partner.
    pub partner_tenant_id: Option<Uuid>,
    /// samgate's id of that partner, if it is known.
    pub partner_id: Option<Uuid>,
    /// Its name, if it is known.
    pub partner_name: Option<String>,
    /// Details (never secrets).
    pub details: serde_json::Value,
}

/// What the audit log is filtered by.
#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    /// Partner tenant.
    pub partner_tenant_id: Option<Uuid>,
    /// Exact actor.
    pub actor: Option<Actor>,
    /// Part of a staff member's name (case-insensitive).
    pub actor_name: Option<&'a str>,
    /// Part of the partner's name (case-insensitive).
    pub partner_name: Option<&'a str>,
    /// Exact action.
    pub action: Option<&'a str>,
    /// At or after.
    pub from: Option<OffsetDateTime>,
    /// Before.
    pub until: Option<OffsetDateTime>,
    /// Rows older than this id.
    pub before: Option<i64>,
}

/// `%text%` for `ILIKE`, with the text's own wildcards escaped.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The SQL condition that a stored actor (`actor_column`) is the staff member `id_column`, spelt
/// from [`Actor::STAFF_PREFIX`]: `<actor> LIKE 'staff:%' AND <id>::text = substr(<actor>, 7)`.
fn staff_actor_join(actor_column: &str, id_column: &str) -> String {
    let prefix = Actor::STAFF_PREFIX;
    // `substr` counts characters from 1; the prefix is ASCII, so its byte length is its length.
    let id_from = prefix.len() + 1;
    format!(
        "{actor_column} LIKE '{prefix}%' AND {id_column}::text = substr({actor_column}, {id_from})"
    )
}

/// One page of audit events, newest first.
pub async fn search_audit(
    executor: impl PgExecutor<'_>,
    filter: &AuditFilter<'_>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
        "SELECT a.id, a.occurred_at, a.actor, s.display_name AS actor_name, a.action, \
         a.partner_tenant_id, p.id AS partner_id, p.display_name AS partner_name, a.details \
         FROM audit_events a \
         LEFT JOIN staff s ON {} \
         LEFT JOIN partners p ON p.tenant_id = a.partner_tenant_id \
         WHERE TRUE",
        staff_actor_join("a.actor", "s.id"),
    ));
    if let Some(tenant) = filter.partner_tenant_id {
        query.push(" AND a.partner_tenant_id = ").push_bind(tenant);
    }
    if let Some(actor) = &filter.actor {
        query.push(" AND a.actor = ").push_bind(actor);
    }
    if let Some(name) = filter.actor_name {
        query
            .push(" AND s.display_name ILIKE ")
            .push_bind(contains_pattern(name));
    }
    if let Some(name) = filter.partner_name {
        query
            .push(" AND p.display_name ILIKE ")
            .push_bind(contains_pattern(name));
    }
    if let Some(action) = filter.action {
        query.push(" AND a.action = ").push_bind(action);
    }
    if let Some(from) = filter.from {
        query.push(" AND a.occurred_at >= ").push_bind(from);
    }
    if let Some(until) = filter.until {
        query.push(" AND a.occurred_at < ").push_bind(until);
    }
    if let Some(before) = filter.before {
        query.push(" AND a.id < ").push_bind(before);
    }
    query.push(" ORDER BY a.id DESC LIMIT ").push_bind(limit);
    query.build_query_as().fetch_all(executor).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staff_actor_join_is_the_text_it_always_was() {
        assert_eq!(
            staff_actor_join("a.actor", "s.id"),
            "a.actor LIKE 'staff:%' AND s.id::text = substr(a.actor, 7)"
        );
        let id = Uuid::nil();
        let stored = Actor::Staff(id).to_string();
        assert_eq!(&stored[..Actor::STAFF_PREFIX.len()], Actor::STAFF_PREFIX);
        assert_eq!(&stored[Actor::STAFF_PREFIX.len()..], id.to_string());
    }
}
