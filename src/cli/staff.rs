//! `samgate staff`: staff accounts of the admin UI (add, list, disable, set-role, reset-mfa).

use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};

use crate::clock::format_utc;
use crate::db;
use crate::domain::Actor;

use super::command_app;

#[derive(Debug, Subcommand)]
pub(super) enum StaffCommand {
    /// Add a staff member and print a generated password once (or use SAMGATE_STAFF_PASSWORD).
    Add {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// admin, operator or viewer.
        #[arg(long, value_parser = parse_role)]
        role: crate::staff::Role,
        /// Name shown in the admin UI (default: the part of the email before @).
        #[arg(long)]
        name: Option<String>,
    },
    /// List staff members.
    List,
    /// Disable a staff member by email: their sessions end at once.
    Disable {
        /// Sign-in email.
        email: String,
    },
    /// Change a staff member's role (their sessions end).
    SetRole {
        /// Sign-in email.
        email: String,
        /// admin, operator or viewer.
        #[arg(value_parser = parse_role)]
        role: crate::staff::Role,
    },
    /// Remove a staff member's second factor and recovery codes (a lost phone, a lock-out); their
    /// sessions end, and an admin sets up a new one at the next password sign-in. Audited.
    ResetMfa {
        /// Sign-in email.
        email: String,
    },
}

fn parse_role(text: &str) -> Result<crate::staff::Role, String> {
    crate::staff::Role::parse(text).ok_or_else(|| "expected admin, operator or viewer".to_owned())
}

/// Runs a `staff` command.
pub(super) async fn run(command: StaffCommand) -> anyhow::Result<()> {
    let app = command_app().await?;
    let now = app.clock.now();
    let find = async |email: &str| -> anyhow::Result<db::staff::StaffMember> {
        let email = crate::staff::StaffEmail::parse(email)
            .ok_or_else(|| anyhow::anyhow!("{email:?} is not a valid email address"))?;
        db::staff::find_by_email(&app.pool, email.as_str())
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("no staff member with this email (see `samgate staff list`)")
            })
    };
    match command {
        StaffCommand::Add { email, role, name } => {
            let chosen = std::env::var("SAMGATE_STAFF_PASSWORD")
                .ok()
                .map(SecretString::from);
            let generated = chosen.is_none();
            let (member, password) = crate::staff::add_staff(
                &app.pool,
                crate::staff::NewStaffRequest {
                    email: &email,
                    display_name: name.as_deref(),
                    role,
                    password: chosen,
                    actor: &Actor::Cli,
                },
                now,
            )
            .await?;
            println!(
                "staff member {} ({}) added as {}",
                member.email, member.id, member.role
            );
            if generated {
                println!("password  {}", password.expose_secret());
                println!("(shown only now; samgate stores only an Argon2id hash)");
            } else {
                println!("password  taken from SAMGATE_STAFF_PASSWORD");
            }
        }
        StaffCommand::List => {
            for member in db::staff::list(&app.pool).await? {
                let state = if member.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                let last = member
                    .last_login_at
                    .map_or_else(|| "never".to_owned(), format_utc);
                println!(
                    "{}  {:8}  {:8}  {}  {}  last sign-in {last}",
                    member.id, member.role, state, member.email, member.display_name
                );
            }
        }
        StaffCommand::Disable { email } => {
            let member = find(&email).await?;
            crate::staff::disable_staff(&app.pool, member.id, &Actor::Cli, now).await?;
            println!("staff member {} disabled", member.email);
        }
        StaffCommand::SetRole { email, role } => {
            let member = find(&email).await?;
            crate::staff::set_role(&app.pool, member.id, role, &Actor::Cli, now).await?;
            println!("staff member {} is now {role}", member.email);
        }
        StaffCommand::ResetMfa { email } => {
            let member = find(&email).await?;
            if crate::staff::mfa::reset_mfa(&app.pool, member.id, &Actor::Cli, now).await? {
                println!(
                    "second factor of {} removed; their sessions ended (an admin sets up a new one at the next sign-in)",
                    member.email
                );
            } else {
                println!("staff member {} had no second factor", member.email);
            }
        }
    }
    Ok(())
}
