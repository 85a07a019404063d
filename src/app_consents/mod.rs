//! The CPV app's consent in a partner's customer tenants, made with the partner's Partner Center
//! token through `applicationconsents`: grant and remove for one customer (recorded on the
//! customer's access state too), and "grant to all" as a background run over the customer
//! directory with per-customer progress. Granting is idempotent where samgate knows what exists:
//! Partner Center's 409 "already exists" is success when samgate recorded that consent with the
//! configured grants, and a stale consent of unknown permissions otherwise (re-apply replaces it
//! by DELETE then POST, as Microsoft's samples do); removing what is absent is success. Every
//! outcome is recorded in `app_consents` and the audit log; failures carry advice for a person.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::App;
use crate::broker::{BrokerError, Resource, TokenKey};
use crate::db;
use crate::db::app_consents::ConsentState;
use crate::domain::Actor;
use crate::health::customer::ConsentHeld;
use crate::partner_center::{ConsentGranted, ConsentRemoved, PartnerCenterError};
use crate::partners::PartnerInfo;

/// Customers per Partner Center page during a bulk run.
const RUN_PAGE_SIZE: u32 = 200;
/// A run whose task showed no sign of life for this long is taken over as abandoned.
const RUN_STALE_AFTER: time::Duration = time::Duration::minutes(5);
/// Grants in flight during a bulk run (Partner Center allows 50 requests/s per CPV app).
const RUN_CONCURRENCY: usize = 4;
/// Throttled calls are retried this many times after waiting `Retry-After` (capped).
const THROTTLE_RETRIES: u32 = 3;

/// A failure explained for a person: a short code, what happened, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{summary} ({code})")]
pub struct Problem {
    /// Stable code, with Microsoft's code when there is one (`consent_required AADSTS700082`).
    pub code: String,
    /// What happened.
    pub summary: String,
    /// What to do.
    pub advice: String,
    /// Seconds Microsoft asked to wait, on throttling.
    pub retry_after: Option<u64>,
}

impl Problem {
    fn new(code: impl Into<String>, summary: &str, advice: &str) -> Self {
        Self {
            code: code.into(),
            summary: summary.to_owned(),
            advice: advice.to_owned(),
            retry_after: None,
        }
    }

    fn database(err: &sqlx::Error) -> Self {
        tracing::warn!(error = %err, "app consent bookkeeping failed");
        Self::new(
            "database",
            "samgate's database did not answer",
            "Try again in a moment; if it keeps failing, check samgate's database.",
        )
    }

    /// The problem behind a broker failure to get the partner's Partner Center token.
    pub fn from_broker(err: &BrokerError) -> Self {
        let with_code = |base: &str, c: Option<u64>| match c {
            Some(code) => format!("{base} AADSTS{code}"),
            None => base.to_owned(),
        };
        match err {
            BrokerError::ConsentRequired(c) => Self::new(
                with_code("consent_required", c.as_ref().and_then(|c| c.code)),
                "The partner's consent is no longer valid",
                c.as_ref().map_or(
                    "Create a re-consent invitation on the partner's page and send it to the partner's admin.",
                    |c| c.advice,
                ),
            ),
            BrokerError::MfaRequired(c) => Self::new(
                with_code("mfa_required", c.as_ref().and_then(|c| c.code)),
                "The partner's sign-in must satisfy multi-factor authentication again",
                c.as_ref().map_or(
                    "Create a re-consent invitation; the partner's admin must sign in with MFA.",
                    |c| c.advice,
                ),
            ),
            BrokerError::Throttled => Self::new(
                "throttled",
                "Microsoft is throttling token requests",
                "Wait a minute and try again.",
            ),
            BrokerError::Unavailable(_) => Self::new(
                "unavailable",
                "Microsoft's sign-in service could not be reached",
                "This is usually temporary: try again in a few minutes.",
            ),
            BrokerError::Storage(_) => Self::new(
                "database_unavailable",
                "samgate's database could not be reached",
                "This is usually temporary: try again in a few minutes; if it persists, an \
                 operator should check the database (/readyz).",
            ),
            BrokerError::AppConfiguration(c) => Self::new(
                with_code("app_configuration", c.code),
                "Microsoft refused the CPV app's own credentials",
                c.advice,
            ),
            BrokerError::NoGrant => Self::new(
                "no_grant",
                "samgate holds no consent for this partner",
                "Create an invitation for the partner's admin; customers can be read once they consent.",
            ),
            BrokerError::Customer(refusal) => Self::new(
                with_code(
                    refusal.problem.as_str(),
                    refusal.classified.as_ref().and_then(|c| c.code),
                ),
                "Microsoft refused a token for the customer tenant",
                refusal.advice,
            ),
        }
    }

    /// The problem behind a failed Partner Center call.
    pub fn from_partner_center(err: &PartnerCenterError) -> Self {
        let with_code = |base: String, code: &Option<String>| match code {
            Some(code) => format!("{base} PC{code}"),
            None => base,
        };
        match err {
            PartnerCenterError::TokenRejected { code } => Self::new(
                with_code("partner_center_token_rejected".into(), code),
                "Partner Center refused the partner's token",
                "Partner Center requires MFA on the partner's sign-in (code 900421): create a \
                 re-consent invitation; the partner's admin must sign in with MFA.",
            ),
            PartnerCenterError::Status {
                status: 429,
                retry_after,
                ..
            } => Self {
                retry_after: *retry_after,
                ..Self::new(
                    "throttled",
                    "Partner Center is throttling requests",
                    "Wait a minute and try again; bulk runs slow down by themselves.",
                )
            },
            PartnerCenterError::InsufficientPrivileges { code, .. } => Self::new(
                with_code("gdap_privileges".into(), code),
                "The partner's GDAP access to this customer does not allow consenting the app",
                "The partner needs an active GDAP relationship with this customer that holds \
                 Cloud Application Administrator (or Privileged Role or Global Administrator), \
                 assigned to its admin agents' security group; ask the partner to set it up or \
                 extend it, then grant again.",
            ),
            PartnerCenterError::Status {
                status: 403, code, ..
            } => Self::new(
                with_code("forbidden".into(), code),
                "Partner Center refused: the partner may not act for this customer",
                "Check that the customer still has a reseller relationship with the partner and \
                 that the consenting account holds the Admin agent role in Partner Center.",
            ),
            PartnerCenterError::Status {
                status: 404, code, ..
            } => Self::new(
                with_code("not_found".into(), code),
                "Partner Center does not know this customer",
                "The customer may have left the partner; reload the customer list.",
            ),
            PartnerCenterError::Status { status, code, .. } if *status >= 500 => Self::new(
                with_code(format!("http_{status}"), code),
                "Partner Center failed",
                "This is usually temporary: try again in a few minutes.",
            ),
            PartnerCenterError::Status { status, code, .. } => Self::new(
                with_code(format!("http_{status}"), code),
                "Partner Center refused the request",
                "Check SAMGATE_APP_CONSENT_GRANTS (resource ids and permission names) and the \
                 CPV app's registration; the code names Partner Center's reason.",
            ),
            PartnerCenterError::Unreachable(_) => Self::new(
                "unreachable",
                "Partner Center could not be reached",
                "This is usually temporary: try again in a few minutes.",
            ),
            PartnerCenterError::Protocol(_) => Self::new(
                "unexpected_answer",
                "Partner Center answered in an unexpected way",
                "Try again; if it persists, report it with the time of the attempt.",
            ),
        }
    }
}

fn token_key(partner: &PartnerInfo) -> TokenKey {
    TokenKey {
        partner_id: partner.id,
        partner_tenant: partner.tenant_id,
        authority_tenant: partner.tenant_id,
        resource: Resource::PartnerCenter,
    }
}

async fn partner_center_token(app: &App, partner: &PartnerInfo) -> Result<SecretString, Problem> {
    app.broker
        .access_token(token_key(partner))
        .await
        .map(|t| t.secret.clone())
        .map_err(|e| Problem::from_broker(&e))
}

/// Turns a Partner Center failure into a problem; a refused token is dropped from the broker's
/// caches so the next attempt gets a new one.
async fn partner_center_problem(
    app: &App,
    partner: &PartnerInfo,
    err: &PartnerCenterError,
) -> Problem {
    if matches!(err, PartnerCenterError::TokenRejected { .. }) {
        app.broker.forget(token_key(partner)).await;
    }
    Problem::from_partner_center(err)
}

/// Calls Partner Center, waiting out throttling (`Retry-After`, at most 30 s) a few times.
async fn with_throttle_retries<T, F, Fut>(mut call: F) -> Result<T, PartnerCenterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PartnerCenterError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(PartnerCenterError::Status {
                status: 429,
                retry_after,
                ..
            }) if attempt < THROTTLE_RETRIES => {
                attempt += 1;
                let wait = retry_after.unwrap_or(2).clamp(1, 30);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => return other,
        }
    }
}

async fn grant_once(
    app: &App,
    partner: &PartnerInfo,
    customer: Uuid,
) -> Result<ConsentGranted, Problem> {
    let token = partner_center_token(app, partner).await?;
    let result = with_throttle_retries(|| {
        app.partner_center.grant_application_consent(
            &token,
            customer,
            app.config.microsoft.client_id,
            &app.config.cpv_name,
            &app.config.app_consent_grants,
        )
    })
    .await;
    match result {
        Ok(outcome) => Ok(outcome),
        Err(err) => Err(partner_center_problem(app, partner, &err).await),
    }
}

/// The canonical text of the configured grants (what a current consent must hold).
pub fn configured_grants(app: &App) -> String {
    let ids: Vec<String> = app
        .config
        .app_consent_grants
        .iter()
        .map(|g| g.enterprise_application_id.to_string())
        .collect();
    crate::health::customer::canonical_grants(
        ids.iter().map(String::as_str).zip(
            app.config
                .app_consent_grants
                .iter()
                .map(|g| g.scopes.as_slice()),
        ),
    )
}

fn grants_json(app: &App) -> serde_json::Value {
    app.config
        .app_consent_grants
        .iter()
        .map(|g| {
            serde_json::json!({
                "resource": g.enterprise_application_id,
                "scopes": g.scopes.join(","),
            })
        })
        .collect()
}

/// One customer's outcome as it is recorded: its state, the failure, and the audit event.
struct Entry<'a> {
    state: &'a str,
    problem: Option<&'a Problem>,
    action: &'a str,
    details: serde_json::Value,
}

async fn record(
    app: &App,
    partner: &PartnerInfo,
    customer: Uuid,
    actor: &Actor,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    let Entry {
        state,
        problem,
        action,
        details,
    } = entry;
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    db::app_consents::record_state(
        &mut *tx,
        &ConsentState {
            partner_id: partner.id,
            customer_tenant_id: customer,
            state,
            error_code: problem.map(|p| p.code.as_str()),
            advice: problem.map(|p| p.advice.as_str()),
            updated_by: actor,
        },
        now,
    )
    .await?;
    db::audit::record(
        &mut *tx,
        actor,
        action,
        Some(partner.tenant_id),
        details,
        now,
    )
    .await?;
    let expected = configured_grants(app);
    let consent = match state {
        "granted" => Some(ConsentHeld::Grants(expected.as_str())),
        "exists" => Some(ConsentHeld::Unknown),
        "removed" => Some(ConsentHeld::Nothing),
        _ => None,
    };
    if let Some(grants) = consent {
        crate::health::customer::record_consent(
            &mut tx,
            crate::health::customer::ConsentReport {
                partner_id: partner.id,
                partner_tenant: partner.tenant_id,
                customer,
                grants,
                expected: &expected,
                actor,
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    if consent.is_some() {
        // What was remembered about this customer (consent missing) may no longer hold.
        app.broker
            .forget_refusals(partner.tenant_id, customer)
            .await;
    }
    Ok(())
}

/// What granting the CPV app's consent in one customer tenant came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted {
    /// Partner Center created it now.
    Created,
    /// It existed (409) and samgate had recorded it with the configured grants.
    AlreadyCurrent,
    /// It existed (409) with permissions samgate did not grant or does not know: Partner Center
    /// answers 409 to any existing consent, whatever its scopes, and keeps the old ones. Recorded
    /// as stale; [`reapply`] replaces it.
    ExistsWithOtherGrants,
}

/// Consents the CPV app in one customer tenant with the configured grants; records the outcome
/// and an audit event either way.
pub async fn grant(
    app: &App,
    partner: &PartnerInfo,
    customer: Uuid,
    actor: &Actor,
) -> Result<Granted, Problem> {
    let outcome = match grant_once(app, partner, customer).await {
        Ok(ConsentGranted::Created) => Ok(Granted::Created),
        Ok(ConsentGranted::AlreadyExists) => {
            let known = db::customers::find(&app.pool, partner.id, customer)
                .await
                .map_err(|e| Problem::database(&e))?;
            let expected = configured_grants(app);
            let current = known.is_some_and(|row| {
                row.consent == crate::domain::ConsentState::Granted
                    && row.consent_grants.as_deref() == Some(expected.as_str())
            });
            Ok(if current {
                Granted::AlreadyCurrent
            } else {
                Granted::ExistsWithOtherGrants
            })
        }
        Err(problem) => Err(problem),
    };
    let (state, action, details) = match &outcome {
        Ok(Granted::ExistsWithOtherGrants) => (
            "exists",
            "app_consent.exists_unverified",
            serde_json::json!({
                "customer_tenant_id": customer,
                "advice": "A consent exists with permissions samgate did not grant; re-apply to replace it with the configured grants.",
            }),
        ),
        Ok(result) => (
            "granted",
            "app_consent.granted",
            serde_json::json!({
                "customer_tenant_id": customer,
                "already_existed": *result == Granted::AlreadyCurrent,
                "grants": grants_json(app),
            }),
        ),
        Err(problem) => (
            "failed",
            "app_consent.grant_failed",
            serde_json::json!({ "customer_tenant_id": customer, "code": problem.code }),
        ),
    };
    let entry = Entry {
        state,
        problem: outcome.as_ref().err(),
        action,
        details,
    };
    record(app, partner, customer, actor, entry)
        .await
        .map_err(|e| Problem::database(&e))?;
    outcome
}

/// Which step of a re-apply failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReapplyError {
    /// The old consent could not be removed; nothing changed.
    Remove(Problem),
    /// The old consent was removed but the new one was not granted.
    Grant(Problem),
}

/// Replaces the CPV app's consent in one customer tenant with the configured grants. Partner
/// Center answers 409 to a consent that exists and keeps its old permissions (Microsoft's samples
/// DELETE before POST), so this removes, then grants; both steps are recorded and audited.
pub async fn reapply(
    app: &App,
    partner: &PartnerInfo,
    customer: Uuid,
    actor: &Actor,
) -> Result<Granted, ReapplyError> {
    remove(app, partner, customer, actor)
        .await
        .map_err(ReapplyError::Remove)?;
    grant(app, partner, customer, actor)
        .await
        .map_err(ReapplyError::Grant)
}

/// Removes the CPV app's consent from one customer tenant; records the outcome and an audit
/// event either way.
pub async fn remove(
    app: &App,
    partner: &PartnerInfo,
    customer: Uuid,
    actor: &Actor,
) -> Result<ConsentRemoved, Problem> {
    let outcome = match partner_center_token(app, partner).await {
        Err(problem) => Err(problem),
        Ok(token) => {
            let result = with_throttle_retries(|| {
                app.partner_center.remove_application_consent(
                    &token,
                    customer,
                    app.config.microsoft.client_id,
                )
            })
            .await;
            match result {
                Ok(removed) => Ok(removed),
                Err(err) => Err(partner_center_problem(app, partner, &err).await),
            }
        }
    };
    let (state, action, details) = match &outcome {
        Ok(result) => (
            "removed",
            "app_consent.removed",
            serde_json::json!({
                "customer_tenant_id": customer,
                "was_absent": *result == ConsentRemoved::Absent,
            }),
        ),
        Err(problem) => (
            "failed",
            "app_consent.remove_failed",
            serde_json::json!({ "customer_tenant_id": customer, "code": problem.code }),
        ),
    };
    let entry = Entry {
        state,
        problem: outcome.as_ref().err(),
        action,
        details,
    };
    record(app, partner, customer, actor, entry)
        .await
        .map_err(|e| Problem::database(&e))?;
    outcome
}

/// Which customers a run grants in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunScope {
    /// Every current customer ("grant to all customers").
    AllCustomers,
    /// The customers that failed in this earlier run of the partner ("retry failed").
    FailedOf(Uuid),
}

/// Starts a run for the partner as a background task, unless a run is going already (then that
/// run's id is returned). Returns the run id and whether this call started it. Used by the admin
/// UI for "grant to all" and "retry failed".
pub async fn start_run(
    app: Arc<App>,
    partner: &PartnerInfo,
    actor: &Actor,
    scope: RunScope,
) -> Result<(Uuid, bool), Problem> {
    let now = app.clock.now();
    let db_problem = |e: sqlx::Error| Problem::database(&e);
    let retry_of = match scope {
        RunScope::AllCustomers => None,
        RunScope::FailedOf(earlier) => Some(earlier),
    };
    let mut tx = app.pool.begin().await.map_err(db_problem)?;
    db::app_consents::abandon_stale_run(&mut *tx, partner.id, now - RUN_STALE_AFTER, now)
        .await
        .map_err(db_problem)?;
    let (run_id, new) = db::app_consents::start_run(&mut tx, partner.id, actor, retry_of, now)
        .await
        .map_err(db_problem)?;
    if new {
        db::audit::record(
            &mut *tx,
            actor,
            "app_consent.run_started",
            Some(partner.tenant_id),
            serde_json::json!({ "run_id": run_id, "retry_of": retry_of, "grants": grants_json(&app) }),
            now,
        )
        .await
        .map_err(db_problem)?;
    }
    tx.commit().await.map_err(db_problem)?;
    if new {
        let partner = partner.clone();
        let actor = actor.to_owned();
        tokio::spawn(async move {
            let outcome = run(&app, run_id, &partner, &actor, scope).await;
            if let Err(err) = finish(&app, run_id, &partner, &actor, outcome).await {
                tracing::warn!(error = %err, app_consent.run_id = %run_id, "cannot finish app consent run");
            }
        });
    }
    Ok((run_id, new))
}

/// Reads the customer directory again, lists every current customer in the scope into the run,
/// then grants each (a few at a time). A customer granted where the partner has no active GDAP
/// relationship is reported as such: the consent exists, but samgate cannot act there.
async fn run(
    app: &App,
    run_id: Uuid,
    partner: &PartnerInfo,
    actor: &Actor,
    scope: RunScope,
) -> Result<(), Problem> {
    let db_problem = |e: sqlx::Error| Problem::database(&e);
    // A retry covers the earlier run's failures that are still customers of the partner.
    let only: Option<std::collections::HashSet<Uuid>> = match scope {
        RunScope::AllCustomers => None,
        RunScope::FailedOf(earlier) => Some(
            db::app_consents::failed_customers(&app.pool, earlier)
                .await
                .map_err(db_problem)?
                .into_iter()
                .collect(),
        ),
    };
    match crate::customers::sync(app, partner, actor).await {
        Ok(_) | Err(crate::customers::SyncError::Busy) => {}
        Err(crate::customers::SyncError::Token(err)) => return Err(Problem::from_broker(&err)),
        Err(crate::customers::SyncError::PartnerCenter(err)) => {
            return Err(Problem::from_partner_center(&err));
        }
        Err(crate::customers::SyncError::Database(err)) => return Err(Problem::database(&err)),
    }
    let mut after: Option<(String, Uuid)> = None;
    let mut position = 0i32;
    let mut no_gdap = std::collections::HashSet::new();
    loop {
        let rows = db::customers::list(
            &app.pool,
            partner.id,
            db::customers::CustomerFilter::All,
            None,
            after.as_ref().map(|(name, id)| (name.as_str(), *id)),
            i64::from(RUN_PAGE_SIZE),
        )
        .await
        .map_err(db_problem)?;
        let Some(last) = rows.last() else { break };
        after = Some((last.company_name.clone(), last.tenant_id));
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|c| only.as_ref().is_none_or(|only| only.contains(&c.tenant_id)))
            .collect();
        let customers: Vec<(Uuid, String)> = rows
            .iter()
            .map(|c| (c.tenant_id, c.company_name.clone()))
            .collect();
        no_gdap.extend(
            rows.iter()
                .filter(|c| c.relationship.denies_access())
                .map(|c| c.tenant_id),
        );
        db::app_consents::add_items(&app.pool, run_id, &customers, position)
            .await
            .map_err(db_problem)?;
        db::app_consents::heartbeat(&app.pool, run_id, app.clock.now())
            .await
            .map_err(db_problem)?;
        position += i32::try_from(customers.len()).unwrap_or(i32::MAX);
    }
    let no_gdap = &no_gdap;
    let items = db::app_consents::run_items(&app.pool, run_id)
        .await
        .map_err(db_problem)?;
    use futures_util::StreamExt;
    futures_util::stream::iter(items.into_iter().filter(|i| i.state == "pending"))
        .for_each_concurrent(RUN_CONCURRENCY, |item| async move {
            let customer = item.customer_tenant_id;
            let outcome = grant(app, partner, customer, actor).await;
            let (state, problem) = match &outcome {
                Ok(Granted::ExistsWithOtherGrants) => ("exists_other_grants", None),
                Ok(_) if no_gdap.contains(&customer) => ("granted_no_gdap", None),
                Ok(Granted::Created) => ("granted", None),
                Ok(Granted::AlreadyCurrent) => ("already_granted", None),
                Err(problem) => ("failed", Some(problem)),
            };
            if let Err(err) = db::app_consents::set_item(
                &app.pool,
                run_id,
                customer,
                state,
                problem.map(|p| p.code.as_str()),
                problem.map(|p| p.advice.as_str()),
                app.clock.now(),
            )
            .await
            {
                tracing::warn!(error = %err, app_consent.run_id = %run_id, "cannot record app consent outcome");
            }
        })
        .await;
    Ok(())
}

async fn finish(
    app: &App,
    run_id: Uuid,
    partner: &PartnerInfo,
    actor: &Actor,
    outcome: Result<(), Problem>,
) -> Result<(), sqlx::Error> {
    let now: OffsetDateTime = app.clock.now();
    let items = db::app_consents::run_items(&app.pool, run_id).await?;
    let count = |state: &str| items.iter().filter(|i| i.state == state).count();
    let mut tx = app.pool.begin().await?;
    let (state, problem) = match &outcome {
        Ok(()) => ("finished", None),
        Err(problem) => ("failed", Some(problem)),
    };
    db::app_consents::finish_run(
        &mut *tx,
        run_id,
        state,
        problem.map(|p| p.summary.as_str()),
        problem.map(|p| p.advice.as_str()),
        now,
    )
    .await?;
    db::audit::record(
        &mut *tx,
        actor,
        "app_consent.run_finished",
        Some(partner.tenant_id),
        serde_json::json!({
            "run_id": run_id,
            "state": state,
            "customers": items.len(),
            "granted": count("granted"),
            "already_granted": count("already_granted"),
            "granted_no_gdap": count("granted_no_gdap"),
            "exists_other_grants": count("exists_other_grants"),
            "failed": count("failed"),
            "code": problem.map(|p| p.code.clone()),
        }),
        now,
    )
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod recorded_tests;
