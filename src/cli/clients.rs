//! `samgate clients`: API clients (create, list, disable) and their keys (create, shown once;
//! list; revoke).

use clap::Subcommand;

use crate::clock::format_utc;
use crate::domain::Actor;

use super::{command_app, parse_lifetime, rfc3339};

#[derive(Debug, Subcommand)]
pub(super) enum ClientsCommand {
    /// Create an API client scoped to some partners (--partner, repeatable) or to all of them.
    #[command(group(clap::ArgGroup::new("scope").required(true).args(["partner", "all_partners"])))]
    Create {
        /// A unique name, e.g. billing-sync.
        #[arg(long)]
        name: String,
        /// A partner tenant id the client may act for (repeat for several).
        #[arg(long, value_name = "TENANT_ID")]
        partner: Vec<uuid::Uuid>,
        /// Let the client act for every partner, present and future.
        #[arg(long)]
        all_partners: bool,
        /// Allow only GET, HEAD and OPTIONS.
        #[arg(long)]
        read_only: bool,
        /// What the client is.
        #[arg(long)]
        description: Option<String>,
    },
    /// List clients and their scopes.
    List,
    /// Disable a client: all its keys stop working.
    Disable {
        /// The client's name or id.
        client: String,
    },
    /// Keys of a client: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(ClientKeysCommand),
}

#[derive(Debug, Subcommand)]
pub(super) enum ClientKeysCommand {
    /// Issue a key and print it (shown once; samgate keeps only its hash).
    Create {
        /// The client's name or id.
        #[arg(long)]
        client: String,
        /// Lifetime, e.g. 90d, 48h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List a client's keys (prefix, dates; never the key).
    List {
        /// The client's name or id.
        #[arg(long)]
        client: String,
    },
    /// Revoke a key by id: every samgate instance refuses it within seconds.
    Revoke {
        /// The key id (from `list`).
        key_id: uuid::Uuid,
    },
}

/// Runs a `clients` command.
pub(super) async fn run(command: ClientsCommand, json: bool) -> anyhow::Result<()> {
    use crate::api_keys::{self, PartnerScope};
    let app = command_app().await?;
    let now = app.clock.now();
    let find = async |reference: &str| -> anyhow::Result<api_keys::Client> {
        api_keys::find_client(&app.pool, reference)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("no API client named {reference:?} (see `samgate clients list`)")
            })
    };
    let when = |at: Option<time::OffsetDateTime>| at.map_or_else(|| "-".to_owned(), format_utc);
    match command {
        ClientsCommand::Create {
            name,
            partner,
            all_partners,
            read_only,
            description,
        } => {
            let client = api_keys::create_client(
                &app.pool,
                api_keys::NewClient {
                    name: &name,
                    description: description.as_deref(),
                    partners: (!all_partners).then_some(partner),
                    read_only,
                    created_by: &Actor::Cli,
                },
                now,
            )
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": client.id, "name": client.name })
                );
                return Ok(());
            }
            println!("API client {} ({}) created", client.name, client.id);
            println!("next: samgate clients keys create --client {}", client.name);
        }
        ClientsCommand::List => {
            let clients = api_keys::list_clients(&app.pool).await?;
            if json {
                let rows: Vec<serde_json::Value> = clients
                    .iter()
                    .map(|client| {
                        let partners = match &client.scope {
                            PartnerScope::All => serde_json::Value::from("all"),
                            PartnerScope::Only(tenants) => serde_json::json!(tenants),
                        };
                        serde_json::json!({
                            "id": client.id,
                            "name": client.name,
                            "enabled": client.disabled_at.is_none(),
                            "read_only": client.read_only,
                            "partners": partners,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::from(rows));
                return Ok(());
            }
            for client in clients {
                let scope = match &client.scope {
                    PartnerScope::All => "all partners".to_owned(),
                    PartnerScope::Only(tenants) => format!("{} partner(s)", tenants.len()),
                };
                let state = if client.disabled_at.is_some() {
                    "disabled"
                } else {
                    "enabled"
                };
                let access = if client.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                println!(
                    "{}  {:8}  {}  {scope}, {access}",
                    client.id, state, client.name
                );
                if let PartnerScope::Only(tenants) = &client.scope {
                    for tenant in tenants {
                        println!("    partner {tenant}");
                    }
                }
            }
        }
        ClientsCommand::Disable { client } => {
            let client = find(&client).await?;
            app.api_keys
                .disable_client(client.id, &Actor::Cli, now)
                .await?;
            println!(
                "API client {} disabled: its keys no longer work",
                client.name
            );
        }
        ClientsCommand::Keys(ClientKeysCommand::Create { client, expires }) => {
            let client = find(&client).await?;
            let expires_at = match expires.as_deref() {
                Some(text) => Some(now + parse_lifetime(text)?),
                None => None,
            };
            let (record, key) =
                api_keys::issue_key(&app.pool, client.id, expires_at, &Actor::Cli, now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": record.id,
                        "prefix": record.prefix,
                        "client": client.name,
                        "expires_at": record.expires_at.map(rfc3339),
                        "key": key.expose_secret(),
                    })
                );
                return Ok(());
            }
            // The key alone on stdout (KEY=$(samgate clients keys create …)); the rest on stderr.
            eprintln!(
                "key {} ({}) for API client {}, expires {}",
                record.id,
                record.prefix,
                client.name,
                when(record.expires_at)
            );
            println!("{}", key.expose_secret());
            eprintln!(
                "This key is shown only now and cannot be shown again: samgate stores only its hash."
            );
            eprintln!("Send it as `Authorization: Bearer <key>`.");
        }
        ClientsCommand::Keys(ClientKeysCommand::List { client }) => {
            let client = find(&client).await?;
            let mut rows = Vec::new();
            for key in api_keys::list_keys(&app.pool, client.id).await? {
                let state = match (key.revoked_at, key.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(at)) if at <= now => "expired",
                    _ => "active",
                };
                if json {
                    rows.push(serde_json::json!({
                        "id": key.id,
                        "prefix": key.prefix,
                        "state": state,
                        "created_at": rfc3339(key.created_at),
                        "expires_at": key.expires_at.map(rfc3339),
                        "last_used_at": key.last_used_at.map(rfc3339),
                    }));
                    continue;
                }
                println!(
                    "{}  {}…  {:7}  created {}  expires {}  last used {}",
                    key.id,
                    key.prefix,
                    state,
                    format_utc(key.created_at),
                    when(key.expires_at),
                    when(key.last_used_at)
                );
            }
            if json {
                println!("{}", serde_json::Value::from(rows));
            }
        }
        ClientsCommand::Keys(ClientKeysCommand::Revoke { key_id }) => {
            let record = app.api_keys.revoke_key(key_id, &Actor::Cli, now).await?;
            println!("key {} ({}…) revoked", record.id, record.prefix);
        }
    }
    Ok(())
}
