//! Per-(partner, customer) access: what a refusal at a customer's authority means
//! ([`verdict`]), and every change of a customer's access facts (directory sync, app consent,
//! token outcome) written with an audit record and `customer.access_changed`. Nothing here
//! touches the partner's own status: a customer tenant's policies are the customer's.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db;
use crate::db::customers::{CustomerRow, DirectoryFacts, TokenFacts};
use crate::domain::{Actor, ConsentState, CustomerRelationship, TokenOutcome};
use crate::identity::{Classified, ErrorClass};
use crate::webhooks::{self, EventType};

/// Why samgate cannot get a token in one customer's tenant: a stable API error code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerProblem {
    /// Not a customer of this partner (or Microsoft knows no such tenant).
    NotFound,
    /// The partner has no delegated (GDAP) role there.
    AccessDenied,
    /// The CPV app is not (or not fully) consented in the customer tenant.
    ConsentMissing,
    /// The customer's Conditional Access or device policy refuses the partner's users.
    PolicyBlocked,
    /// Microsoft failed in a way that may pass.
    Unavailable,
}

impl CustomerProblem {
    /// The stable code (API errors, `customers.token_error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "customer_not_found",
            Self::AccessDenied => "customer_access_denied",
            Self::ConsentMissing => "customer_consent_missing",
            Self::PolicyBlocked => "customer_policy_blocked",
            Self::Unavailable => "customer_unavailable",
        }
    }
}

/// What a refusal at a customer's authority means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A fact about this customer tenant, with advice for a person.
    Customer(CustomerProblem, &'static str),
    /// About the refresh token itself (revoked, expired): only the partner's own authority can
    /// confirm it, so the broker asks there before anything changes.
    GrantSuspect,
    /// About the CPV app's own credential: every tenant is affected, no customer state changes.
    App,
}

const POLICY_ADVICE: &str = "Conditional Access in the customer's tenant refused the partner's \
    delegated access. The customer's administrator must exclude service provider users (GDAP) from \
    that policy or let it accept the partner's MFA. The partner's own consent is fine.";
const DEVICE_ADVICE: &str = "A device or app policy in the customer's tenant (compliant or \
    domain-joined device, approved app) refused the token. Server-side calls have no device: the \
    customer's administrator must exclude service provider users (GDAP) from that policy.";
const GDAP_ADVICE: &str = "The partner's consenting user has no delegated (GDAP) role in this \
    customer's tenant. In Partner Center, give the user's security group an active GDAP \
    relationship with the needed roles for this customer, then sync the customer directory.";
const CONSENT_ADVICE: &str = "The CPV app is not consented in this customer's tenant (or not for \
    this API). Grant the app consent for this customer on samgate's customers page, then retry.";
const NOT_FOUND_ADVICE: &str = "Microsoft knows no tenant with this id (it may have been \
    deleted). It is not a customer samgate can act in; sync the customer directory.";
const UNAVAILABLE_ADVICE: &str = "Microsoft's token service failed for this customer's tenant; \
    retry after the time given.";

/// The meaning of a token-endpoint refusal at a customer's authority.
pub fn verdict(classified: &Classified) -> Verdict {
    use CustomerProblem::*;
    let customer = |problem, advice| Verdict::Customer(problem, advice);
    match classified.code {
        Some(90002 | 5000224) => return customer(NotFound, NOT_FOUND_ADVICE),
        Some(50020 | 50177 | 16000 | 50034) => return customer(AccessDenied, GDAP_ADVICE),
        Some(90099 | 65001 | 700016 | 650052 | 90094 | 90095) => {
            return customer(ConsentMissing, CONSENT_ADVICE);
        }
        Some(53000..=53002) => return customer(PolicyBlocked, DEVICE_ADVICE),
        Some(
            50076 | 50079 | 50078 | 50074 | 50072 | 53003 | 53004 | 530034 | 50158 | 70043 | 70044,
        ) => return customer(PolicyBlocked, POLICY_ADVICE),
        // The refresh token itself: revoked, expired, unknown, issued to someone else.
        Some(70008 | 700082 | 50173 | 70000 | 50089 | 50057 | 9002313 | 700007) => {
            return Verdict::GrantSuspect;
        }
        _ => {}
    }
    match classified.class {
        ErrorClass::CustomerConsentMissing => customer(ConsentMissing, CONSENT_ADVICE),
        ErrorClass::MfaRequired => customer(PolicyBlocked, POLICY_ADVICE),
        ErrorClass::AccessDenied => customer(AccessDenied, GDAP_ADVICE),
        ErrorClass::PartnerConfiguration => customer(PolicyBlocked, POLICY_ADVICE),
        ErrorClass::AppConfiguration => Verdict::App,
        ErrorClass::Throttled | ErrorClass::Transient => customer(Unavailable, UNAVAILABLE_ADVICE),
        ErrorClass::ConsentRequired if classified.error == "interaction_required" => {
            customer(PolicyBlocked, POLICY_ADVICE)
        }
        ErrorClass::ConsentRequired => Verdict::GrantSuspect,
        ErrorClass::Bug | ErrorClass::Unknown => customer(Unavailable, UNAVAILABLE_ADVICE),
    }
}

/// One change of a customer's access facts, as audited and announced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Which fact: `relationship`, `removed`, `consent`, `token`.
    pub fact: &'static str,
    /// Before.
    pub from: String,
    /// After.
    pub to: String,
}

/// The changes between two versions of a row worth announcing. A fact read for the first time
/// (from `unknown`) is knowledge, not a change, and is not announced.
pub fn changes(old: &CustomerRow, new: &CustomerRow) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |fact, from: &str, to: &str| {
        if from != to {
            out.push(Change {
                fact,
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
    };
    if old.relationship != CustomerRelationship::Unknown {
        push(
            "relationship",
            old.relationship.as_str(),
            new.relationship.as_str(),
        );
    }
    if old.listed || old.relationship != CustomerRelationship::Unknown {
        push(
            "removed",
            if old.removed_at.is_some() {
                "true"
            } else {
                "false"
            },
            if new.removed_at.is_some() {
                "true"
            } else {
                "false"
            },
        );
    }
    push("consent", old.consent.as_str(), new.consent.as_str());
    let token = |row: &CustomerRow| match row.token_outcome {
        TokenOutcome::Refused => row.token_error.clone().unwrap_or_else(|| "refused".into()),
        other => other.as_str().to_owned(),
    };
    if old.token_outcome != TokenOutcome::Unknown {
        push("token", &token(old), &token(new));
    }
    out
}

async fn announce(
    conn: &mut PgConnection,
    partner_tenant: Uuid,
    customer: &CustomerRow,
    changes: &[Change],
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let data = serde_json::json!({
        "customer_tenant_id": customer.tenant_id,
        "customer_name": customer.company_name,
        "changes": changes,
        "relationship": customer.relationship,
        "consent": customer.consent,
        "token_outcome": customer.token_outcome,
        "token_error": customer.token_error,
        "token_code": customer.token_code,
        "advice": customer.token_advice,
    });
    db::audit::record(
        &mut *conn,
        actor,
        "customer.access_changed",
        Some(partner_tenant),
        data.clone(),
        now,
    )
    .await?;
    webhooks::enqueue(
        &mut *conn,
        EventType::CustomerAccessChanged,
        Some(partner_tenant),
        data,
        now,
    )
    .await
}

fn blank(partner_id: Uuid, tenant_id: Uuid, now: OffsetDateTime) -> CustomerRow {
    CustomerRow {
        partner_id,
        tenant_id,
        company_name: String::new(),
        domain: String::new(),
        listed: false,
        relationship: CustomerRelationship::Unknown,
        gdap_roles: Vec::new(),
        gdap_ends_at: None,
        consent: ConsentState::None,
        consent_grants: None,
        consent_changed_at: None,
        token_outcome: TokenOutcome::Unknown,
        token_error: None,
        token_code: None,
        token_advice: None,
        token_checked_at: None,
        first_seen_at: now,
        seen_at: now,
        removed_at: None,
    }
}

async fn current(
    conn: &mut PgConnection,
    partner_id: Uuid,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> Result<CustomerRow, sqlx::Error> {
    Ok(
        db::customers::lock_many(&mut *conn, partner_id, &[tenant_id])
            .await?
            .pop()
            .unwrap_or_else(|| blank(partner_id, tenant_id, now)),
    )
}

/// The outcome of a token request at a customer's authority.
#[derive(Debug, Clone, Copy)]
pub enum TokenReport<'a> {
    /// A token was issued.
    Issued,
    /// Refused, with samgate's verdict and Microsoft's classification.
    Refused(CustomerProblem, &'static str, &'a Classified),
}

/// Records a token outcome at a customer's authority; announces it when it differs from the
/// last one. True when something changed.
pub async fn record_token(
    conn: &mut PgConnection,
    partner_id: Uuid,
    partner_tenant: Uuid,
    customer: Uuid,
    report: TokenReport<'_>,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let old = current(conn, partner_id, customer, now).await?;
    let code = match report {
        TokenReport::Refused(_, _, c) => c.code.map(|c| c.to_string()),
        TokenReport::Issued => None,
    };
    let facts = match report {
        TokenReport::Issued => TokenFacts {
            outcome: TokenOutcome::Ok,
            error: None,
            code: None,
            advice: None,
        },
        TokenReport::Refused(problem, advice, _) => TokenFacts {
            outcome: TokenOutcome::Refused,
            error: Some(problem.as_str()),
            code: code.as_deref(),
            advice: Some(advice),
        },
    };
    let mut new = old.clone();
    new.token_outcome = facts.outcome;
    new.token_error = facts.error.map(str::to_owned);
    new.token_code = facts.code.map(str::to_owned);
    new.token_advice = facts.advice.map(str::to_owned);
    let unchanged = old.token_outcome == new.token_outcome
        && old.token_error == new.token_error
        && old.token_code == new.token_code;
    db::customers::write_token_outcome(&mut *conn, partner_id, customer, facts, now).await?;
    if unchanged {
        return Ok(false);
    }
    let mut list = changes(&old, &new);
    if old.token_outcome == TokenOutcome::Unknown && new.token_outcome == TokenOutcome::Refused {
        // A first refusal is news even without an earlier outcome.
        list.push(Change {
            fact: "token",
            from: "unknown".into(),
            to: new.token_error.clone().unwrap_or_default(),
        });
    }
    announce(conn, partner_tenant, &new, &list, &Actor::System, now).await?;
    Ok(true)
}

/// The canonical text of a set of app consent grants (resource id, sorted scopes), so grants
/// made with other scopes than the configured ones are recognised as stale.
pub fn canonical_grants<'a>(grants: impl IntoIterator<Item = (&'a str, &'a [String])>) -> String {
    let mut parts: Vec<String> = grants
        .into_iter()
        .map(|(resource, scopes)| {
            // Entra compares permission names without regard to case.
            let mut scopes: Vec<String> = scopes
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .collect();
            scopes.sort_unstable();
            scopes.dedup();
            format!(
                "{}:{}",
                resource.trim().to_ascii_lowercase(),
                scopes.join(",")
            )
        })
        .collect();
    parts.sort_unstable();
    parts.join(";")
}

/// What the CPV app's consent in a customer tenant holds, as far as samgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentHeld<'a> {
    /// Consented with these grants (canonical text).
    Grants(&'a str),
    /// A consent exists, with permissions samgate does not know (Partner Center's 409 for a
    /// consent samgate did not make): treated as stale until re-applied.
    Unknown,
    /// No consent.
    Nothing,
}

/// An app consent made or removed in a customer tenant.
#[derive(Debug, Clone, Copy)]
pub struct ConsentReport<'a> {
    /// The partner (samgate id).
    pub partner_id: Uuid,
    /// The partner's tenant.
    pub partner_tenant: Uuid,
    /// The customer tenant.
    pub customer: Uuid,
    /// What the customer tenant now holds.
    pub grants: ConsentHeld<'a>,
    /// The configured grants (canonical text).
    pub expected: &'a str,
    /// Who did it.
    pub actor: &'a Actor,
}

/// Records the CPV app's consent in a customer tenant: granted with `grants` (`stale` when they
/// differ from `expected`), or removed. Announced when it changes.
pub async fn record_consent(
    conn: &mut PgConnection,
    report: ConsentReport<'_>,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let ConsentReport {
        partner_id,
        partner_tenant,
        customer,
        grants,
        expected,
        actor,
    } = report;
    let old = current(conn, partner_id, customer, now).await?;
    let (consent, grants) = match grants {
        ConsentHeld::Nothing => (ConsentState::None, None),
        ConsentHeld::Unknown => (ConsentState::Stale, None),
        ConsentHeld::Grants(g) if g == expected => (ConsentState::Granted, Some(g)),
        ConsentHeld::Grants(g) => (ConsentState::Stale, Some(g)),
    };
    db::customers::write_consent(&mut *conn, partner_id, customer, consent, grants, now).await?;
    let mut new = old.clone();
    new.consent = consent;
    let list = changes(&old, &new);
    announce(conn, partner_tenant, &new, &list, actor, now).await?;
    Ok(!list.is_empty())
}

/// Re-evaluates stale consents after `SAMGATE_APP_CONSENT_GRANTS` changed: a consent granted with
/// other grants becomes `stale`, a stale one that matches again becomes `granted`; each change is
/// announced. Returns how many changed.
pub async fn reconcile_consents(
    pool: &sqlx::PgPool,
    expected: &str,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let mut changed = 0u64;
    loop {
        let mut tx = pool.begin().await?;
        let rows = db::customers::lock_consent_mismatches(&mut *tx, expected, 200).await?;
        if rows.is_empty() {
            return Ok(changed);
        }
        for old in rows {
            let partner_tenant = db::partners::find(&mut *tx, old.partner_id)
                .await?
                .map(|p| p.tenant_id)
                .unwrap_or_default();
            let consent = if old.consent_grants.as_deref() == Some(expected) {
                ConsentState::Granted
            } else {
                ConsentState::Stale
            };
            db::customers::write_consent(
                &mut *tx,
                old.partner_id,
                old.tenant_id,
                consent,
                old.consent_grants.as_deref(),
                old.consent_changed_at.unwrap_or(now),
            )
            .await?;
            let mut new = old.clone();
            new.consent = consent;
            announce(
                &mut tx,
                partner_tenant,
                &new,
                &changes(&old, &new),
                &Actor::System,
                now,
            )
            .await?;
            changed += 1;
        }
        tx.commit().await?;
    }
}

/// Writes a batch of a sync's directory facts and announces what changed for customers samgate
/// already knew. `old` holds the locked current rows of the batch (absent = new).
pub async fn record_directory(
    conn: &mut PgConnection,
    partner_id: Uuid,
    partner_tenant: Uuid,
    old: &[CustomerRow],
    facts: &[DirectoryFacts],
    seen_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<usize, sqlx::Error> {
    let mut writes = Vec::new();
    let mut announcements = Vec::new();
    for fact in facts {
        let before = old
            .iter()
            .find(|row| row.tenant_id == fact.tenant_id)
            .cloned()
            .unwrap_or_else(|| blank(partner_id, fact.tenant_id, now));
        let mut after = before.clone();
        after.listed = fact.listed;
        after.relationship = fact.relationship;
        after.gdap_roles = fact.gdap_roles.clone();
        after.gdap_ends_at = fact.gdap_ends_at;
        after.removed_at = fact.removed_at;
        if after.company_name.is_empty() {
            after.company_name = fact.company_name.clone();
        }
        let same = before.listed == after.listed
            && before.relationship == after.relationship
            && before.gdap_roles == after.gdap_roles
            && before.gdap_ends_at == after.gdap_ends_at
            && before.removed_at.is_some() == after.removed_at.is_some();
        if same && fact.removed_at.is_some() {
            continue;
        }
        writes.push(fact.clone());
        let list = changes(&before, &after);
        if !list.is_empty() {
            announcements.push((after, list));
        }
    }
    db::customers::write_directory_facts(&mut *conn, partner_id, &writes, seen_at).await?;
    let changed = announcements.len();
    for (row, list) in announcements {
        announce(conn, partner_tenant, &row, &list, &Actor::System, now).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::errors::{TokenErrorBody, classify};
    use CustomerProblem::*;

    fn refused(error: &str, code: u64) -> Classified {
        classify(
            400,
            &TokenErrorBody {
                error_codes: vec![code],
                ..TokenErrorBody::bare(error)
            },
        )
    }

    #[test]
    fn refusals_at_a_customer_authority_are_facts_about_that_customer() {
        #[rustfmt::skip]
        let table: &[(&str, u64, Verdict)] = &[
            ("invalid_grant", 90002, Verdict::Customer(NotFound, NOT_FOUND_ADVICE)),
            ("invalid_request", 5000224, Verdict::Customer(NotFound, NOT_FOUND_ADVICE)),
            ("invalid_grant", 50020, Verdict::Customer(AccessDenied, GDAP_ADVICE)),
            ("invalid_grant", 50177, Verdict::Customer(AccessDenied, GDAP_ADVICE)),
            ("invalid_grant", 16000, Verdict::Customer(AccessDenied, GDAP_ADVICE)),
            ("invalid_grant", 90099, Verdict::Customer(ConsentMissing, CONSENT_ADVICE)),
            ("invalid_grant", 65001, Verdict::Customer(ConsentMissing, CONSENT_ADVICE)),
            ("unauthorized_client", 700016, Verdict::Customer(ConsentMissing, CONSENT_ADVICE)),
            ("invalid_grant", 50076, Verdict::Customer(PolicyBlocked, POLICY_ADVICE)),
            ("invalid_grant", 50079, Verdict::Customer(PolicyBlocked, POLICY_ADVICE)),
            ("invalid_grant", 53003, Verdict::Customer(PolicyBlocked, POLICY_ADVICE)),
            ("invalid_grant", 53004, Verdict::Customer(PolicyBlocked, POLICY_ADVICE)),
            ("invalid_grant", 53000, Verdict::Customer(PolicyBlocked, DEVICE_ADVICE)),
            ("invalid_grant", 53001, Verdict::Customer(PolicyBlocked, DEVICE_ADVICE)),
            ("invalid_grant", 53002, Verdict::Customer(PolicyBlocked, DEVICE_ADVICE)),
            ("interaction_required", 123456, Verdict::Customer(PolicyBlocked, POLICY_ADVICE)),
            ("temporarily_unavailable", 90055, Verdict::Customer(Unavailable, UNAVAILABLE_ADVICE)),
            ("invalid_grant", 700082, Verdict::GrantSuspect),
            ("invalid_grant", 50173, Verdict::GrantSuspect),
            ("invalid_grant", 987654, Verdict::GrantSuspect),
            ("invalid_client", 7000222, Verdict::App),
        ];
        for (error, code, expected) in table {
            assert_eq!(
                verdict(&refused(error, *code)),
                *expected,
                "{error} AADSTS{code}"
            );
        }
    }

    #[test]
    fn customer_advice_never_asks_the_partner_to_consent_again() {
        for advice in [
            POLICY_ADVICE,
            DEVICE_ADVICE,
            GDAP_ADVICE,
            CONSENT_ADVICE,
            NOT_FOUND_ADVICE,
        ] {
            assert!(!advice.contains("consent again"), "{advice}");
            assert!(advice.len() > 60);
        }
    }

    #[test]
    fn grants_with_the_same_scopes_in_another_order_are_the_same_grants() {
        let graph = "00000003-0000-0000-c000-000000000000";
        let a = canonical_grants([(
            graph,
            &["User.Read.All".to_owned(), "Directory.Read.All".to_owned()][..],
        )]);
        let b = canonical_grants([(
            graph,
            &["directory.read.all".to_owned(), "User.Read.All".to_owned()][..],
        )]);
        let c = canonical_grants([(graph, &["User.Read.All".to_owned()][..])]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    fn row(relationship: CustomerRelationship) -> CustomerRow {
        let mut r = blank(Uuid::nil(), Uuid::nil(), OffsetDateTime::UNIX_EPOCH);
        r.relationship = relationship;
        r.listed = true;
        r
    }

    #[test]
    fn first_knowledge_is_not_announced_but_every_later_change_is() {
        let unknown = row(CustomerRelationship::Unknown);
        let active = row(CustomerRelationship::GdapActive);
        assert!(changes(&unknown, &active).is_empty());
        let mut expired = active.clone();
        expired.relationship = CustomerRelationship::GdapExpired;
        assert_eq!(
            changes(&active, &expired),
            [Change {
                fact: "relationship",
                from: "gdap_active".into(),
                to: "gdap_expired".into()
            }]
        );
        let mut gone = active.clone();
        gone.removed_at = Some(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(changes(&active, &gone)[0].fact, "removed");
        let mut refused = active.clone();
        refused.token_outcome = TokenOutcome::Refused;
        refused.token_error = Some("customer_policy_blocked".into());
        let mut ok = active.clone();
        ok.token_outcome = TokenOutcome::Ok;
        assert_eq!(changes(&ok, &refused)[0].to, "customer_policy_blocked");
        assert!(
            changes(&active, &ok).is_empty(),
            "first token outcome is knowledge"
        );
    }
}
