//! `samgate invitations`: create (the link shown once), list, revoke.

use clap::Subcommand;

use crate::clock::format_utc;
use crate::domain::Actor;
use crate::{db, onboarding};

use super::{command_app, consent_link, parse_lifetime, rfc3339};

#[derive(Debug, Subcommand)]
pub(super) enum InvitationsCommand {
    /// Create an invitation and print its link (shown once).
    Create {
        /// The partner's name as you know it (shown on the consent page).
        #[arg(long)]
        partner_name: String,
        /// The partner's tenant id or verified domain, if known: the consenting admin must belong
        /// to it.
        #[arg(long)]
        tenant: Option<String>,
        /// The admin's sign-in name, pre-filled at Microsoft.
        #[arg(long)]
        login_hint: Option<String>,
        /// Lifetime, e.g. 7d, 48h, 30m (default SAMGATE_INVITATION_TTL_HOURS).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List recent invitations.
    List,
    /// Revoke a pending invitation by id.
    Revoke {
        /// The invitation id (from `list`).
        id: uuid::Uuid,
    },
}

/// Runs an `invitations` command.
pub(super) async fn run(command: InvitationsCommand, json: bool) -> anyhow::Result<()> {
    let app = command_app().await?;
    let now = app.clock.now();
    match command {
        InvitationsCommand::Create {
            partner_name,
            tenant,
            login_hint,
            expires,
        } => {
            let expected_tenant = match tenant.as_deref() {
                Some(t) => Some(onboarding::parse_expected_tenant(t).ok_or_else(|| {
                    anyhow::anyhow!("--tenant must be a tenant id (GUID) or a domain name")
                })?),
                None => None,
            };
            let ttl = match expires.as_deref() {
                Some(text) => parse_lifetime(text)?,
                None => app.config.invitation_ttl,
            };
            let (invitation, token) = onboarding::create_invitation(
                &app.pool,
                &onboarding::NewInvitationRequest {
                    partner_name: partner_name.trim(),
                    expected_tenant: expected_tenant.as_deref(),
                    login_hint: login_hint.as_deref(),
                    partner_id: None,
                    ttl,
                    created_by: &Actor::Cli,
                },
                now,
            )
            .await?;
            let link = consent_link(&app.config, &token);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": invitation.id,
                        "partner_name": invitation.partner_name,
                        "expires_at": rfc3339(invitation.expires_at),
                        "link": link,
                    })
                );
                return Ok(());
            }
            println!(
                "invitation {} for {}",
                invitation.id, invitation.partner_name
            );
            println!("expires   {}", format_utc(invitation.expires_at));
            println!("link      {link}");
            println!("(the link is shown only now; samgate stores only its hash)");
        }
        InvitationsCommand::List => {
            let mut rows = Vec::new();
            for invitation in db::invitations::list(&app.pool, 100).await? {
                let state = match onboarding::InvitationState::of(Some(invitation.clone()), now) {
                    onboarding::InvitationState::Usable(_) => "pending",
                    onboarding::InvitationState::Expired => "expired",
                    onboarding::InvitationState::Used => "used",
                    onboarding::InvitationState::Revoked => "revoked",
                    onboarding::InvitationState::Unknown => "unknown",
                };
                if json {
                    rows.push(serde_json::json!({
                        "id": invitation.id,
                        "state": state,
                        "partner_name": invitation.partner_name,
                        "expires_at": rfc3339(invitation.expires_at),
                    }));
                    continue;
                }
                println!(
                    "{}  {:8}  {}  expires {}",
                    invitation.id,
                    state,
                    invitation.partner_name,
                    format_utc(invitation.expires_at)
                );
            }
            if json {
                println!("{}", serde_json::Value::from(rows));
            }
        }
        InvitationsCommand::Revoke { id } => {
            anyhow::ensure!(
                onboarding::revoke_invitation(&app.pool, id, &Actor::Cli, now).await?,
                "invitation {id} is not pending (unknown, used, or already revoked)"
            );
            println!("invitation {id} revoked");
        }
    }
    Ok(())
}
