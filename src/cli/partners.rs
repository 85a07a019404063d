//! `samgate partners`: refresh grants now, offboard, sync and list a partner's customers.

use clap::Subcommand;

use crate::db;
use crate::domain::Actor;

use super::{Incomplete, command_app};

#[derive(Debug, Subcommand)]
pub(super) enum PartnersCommand {
    /// Refresh grants now and print a summary: those due (not refreshed for
    /// SAMGATE_KEEPALIVE_AFTER_DAYS), every live one (--all), or one partner's (--tenant).
    #[command(group(clap::ArgGroup::new("which").args(["all", "tenant"])))]
    Refresh {
        /// Every live grant, however recently refreshed.
        #[arg(long)]
        all: bool,
        /// Only this partner tenant id (whatever its state, unless offboarded).
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<uuid::Uuid>,
    },
    /// Offboard a partner: destroy its grant, revoke its invitations, audit what was removed.
    Offboard {
        /// The partner's tenant id.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: uuid::Uuid,
        /// First remove the CPV app's consent from each of its customers through Partner Center.
        #[arg(long)]
        remove_app_consents: bool,
    },
    /// Read a partner's customers (Partner Center) and GDAP relationships (Graph) again now.
    SyncCustomers {
        /// The partner's tenant id.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: uuid::Uuid,
    },
    /// List a partner's customers with their GDAP relationship, app consent and token outcome.
    Customers {
        /// The partner's tenant id.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: uuid::Uuid,
        /// Only customers needing attention (no or expired GDAP, consent missing or stale,
        /// token refused).
        #[arg(long)]
        needs_attention: bool,
    },
}

/// Runs a `partners` command.
pub(super) async fn run(command: PartnersCommand) -> anyhow::Result<()> {
    use crate::jobs::keep_alive::{self, Selection};
    let app = command_app().await?;
    let now = app.clock.now();
    match command {
        PartnersCommand::Refresh { all, tenant } => {
            let selection = match (all, tenant) {
                (_, Some(tenant)) => Selection::Tenant(tenant),
                (true, None) => Selection::All,
                (false, None) => Selection::Due,
            };
            let summary = keep_alive::run(&app, now, selection).await?;
            println!("{summary}");
            if summary.needs_consent + summary.mfa_required > 0 {
                return Err(Incomplete(format!(
                    "{} partner(s) need their admin to consent again: send a re-consent \
                     invitation (samgate invitations create)",
                    summary.needs_consent + summary.mfa_required
                ))
                .into());
            }
            if summary.failed > 0 {
                return Err(Incomplete(format!(
                    "{} refresh(es) failed for a reason that may pass; they are retried by the \
                     next keep-alive cycle",
                    summary.failed
                ))
                .into());
            }
        }
        PartnersCommand::Offboard {
            tenant,
            remove_app_consents,
        } => {
            let report =
                crate::lifecycle::offboard(&app, tenant, &Actor::Cli, remove_app_consents).await?;
            println!("partner {tenant} offboarded");
            println!(
                "  grant deleted: {}, shared access tokens deleted: {}",
                report.grants_deleted, report.access_tokens_deleted
            );
            println!(
                "  app consents removed: {}, already absent: {}",
                report.app_consents_removed.len(),
                report.app_consents_absent.len()
            );
            println!(
                "  invitations revoked: {}",
                report.invitations_revoked.len()
            );
        }
        PartnersCommand::SyncCustomers { tenant } => {
            let partner = app
                .partners
                .by_tenant(tenant)
                .await
                .map_err(|e| anyhow::anyhow!("database: {e}"))?
                .ok_or_else(|| anyhow::anyhow!("no partner has tenant id {tenant}"))?;
            let report = crate::customers::sync(&app, &partner, &Actor::Cli).await?;
            println!(
                "{}: {} customers listed ({} new, {} removed, {} changed); GDAP {}",
                partner.display_name,
                report.listed,
                report.added,
                report.removed,
                report.changed,
                if report.gdap_readable {
                    format!(
                        "read ({} customers with relationships)",
                        report.gdap_customers
                    )
                } else {
                    "not readable (Graph refused; relationships unknown)".to_owned()
                }
            );
        }
        PartnersCommand::Customers {
            tenant,
            needs_attention,
        } => {
            let partner = db::partners::find_by_tenant(&app.pool, tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no partner has tenant id {tenant}"))?;
            let filter = if needs_attention {
                db::customers::CustomerFilter::NeedsAttention
            } else {
                db::customers::CustomerFilter::All
            };
            let mut after: Option<(String, uuid::Uuid)> = None;
            loop {
                let rows = db::customers::list(
                    &app.pool,
                    partner.id,
                    filter,
                    None,
                    after.as_ref().map(|(n, id)| (n.as_str(), *id)),
                    500,
                )
                .await?;
                let Some(last) = rows.last() else { break };
                after = Some((last.company_name.clone(), last.tenant_id));
                for row in &rows {
                    println!(
                        "{}  {:<40}  gdap={:<12} consent={:<7} token={}",
                        row.tenant_id,
                        row.company_name,
                        row.relationship.as_str(),
                        row.consent.as_str(),
                        row.token_error
                            .as_deref()
                            .unwrap_or(row.token_outcome.as_str())
                    );
                }
            }
        }
    }
    Ok(())
}
