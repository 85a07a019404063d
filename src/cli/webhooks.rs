//! `samgate webhooks`: endpoints (add, secret shown once; list; rotate-secret; disable; enable)
//! and deliveries (list, replay).

use clap::Subcommand;

use crate::app::App;
use crate::db;
use crate::domain::Actor;

use super::command_app;

#[derive(Debug, Subcommand)]
pub(super) enum WebhooksCommand {
    /// Register an endpoint and print its signing secret (shown once).
    Add {
        /// Where events are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// An event type to send (repeat for several; default: all), e.g. partner.needs_consent.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// What the endpoint is.
        #[arg(long)]
        description: Option<String>,
    },
    /// List endpoints.
    List,
    /// Issue a new signing secret; the old one keeps signing for SAMGATE_WEBHOOK_SECRET_OVERLAP_HOURS.
    RotateSecret {
        /// The endpoint id (from `list`).
        endpoint: uuid::Uuid,
    },
    /// Stop sending to an endpoint; its queued deliveries wait until it is enabled again.
    Disable {
        /// The endpoint id (from `list`).
        endpoint: uuid::Uuid,
    },
    /// Send to a disabled endpoint again, queued deliveries first.
    Enable {
        /// The endpoint id (from `list`).
        endpoint: uuid::Uuid,
    },
    /// Recent deliveries with their last answer.
    Deliveries {
        /// Only this endpoint.
        #[arg(long)]
        endpoint: Option<uuid::Uuid>,
        /// Only pending, delivered or failed ones.
        #[arg(long)]
        status: Option<crate::domain::DeliveryStatus>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a delivery again now, with its original webhook-id.
    Replay {
        /// The delivery id (from `deliveries`).
        delivery: i64,
    },
}

/// Runs a `webhooks` command.
pub(super) async fn run(command: WebhooksCommand) -> anyhow::Result<()> {
    let app = command_app().await?;
    let now = app.clock.now();
    match command {
        WebhooksCommand::Add {
            url,
            events,
            description,
        } => {
            let (endpoint, secret) = crate::webhooks::add_endpoint(
                &app,
                &url,
                &events,
                description.as_deref(),
                &Actor::Cli,
                now,
            )
            .await?;
            eprintln!("webhook endpoint {} for {}", endpoint.id, endpoint.url);
            // The secret alone on stdout; it is shown only now.
            println!("{}", secret.expose());
            eprintln!(
                "Verify signatures with this secret (Standard Webhooks); samgate keeps it sealed."
            );
        }
        WebhooksCommand::List => {
            for endpoint in db::webhooks::list_endpoints(&app.pool).await? {
                let state = if endpoint.disabled_at.is_some() {
                    "disabled"
                } else {
                    "enabled"
                };
                let events = if endpoint.event_types.is_empty() {
                    "all events".to_owned()
                } else {
                    endpoint.event_types.join(", ")
                };
                println!("{}  {state:8}  {}  {events}", endpoint.id, endpoint.url);
            }
        }
        WebhooksCommand::RotateSecret { endpoint } => {
            let secret = crate::webhooks::rotate_secret(&app, endpoint, &Actor::Cli, now).await?;
            eprintln!(
                "new secret for {endpoint}; the previous one signs too for {} hours",
                app.config.lifecycle.webhook_secret_overlap.whole_hours()
            );
            println!("{}", secret.expose());
        }
        WebhooksCommand::Disable { endpoint } => {
            switch_endpoint(&app, endpoint, false, now).await?
        }
        WebhooksCommand::Enable { endpoint } => switch_endpoint(&app, endpoint, true, now).await?,
        WebhooksCommand::Deliveries {
            endpoint,
            status,
            limit,
        } => {
            for d in db::webhooks::list_deliveries(&app.pool, endpoint, status, limit).await? {
                println!(
                    "{}  {:9}  {}  {}  attempts {}  last {}  {}",
                    d.id,
                    d.status.as_str(),
                    d.event_type,
                    d.message_id,
                    d.attempts,
                    d.last_status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    d.last_error.unwrap_or_default()
                );
            }
        }
        WebhooksCommand::Replay { delivery } => {
            crate::webhooks::replay(&app, delivery, &Actor::Cli, now).await?;
            println!("delivery {delivery} queued again");
        }
    }
    Ok(())
}

async fn switch_endpoint(
    app: &App,
    endpoint: uuid::Uuid,
    enabled: bool,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    let changed =
        crate::webhooks::set_endpoint_enabled(app, endpoint, enabled, &Actor::Cli, now).await?;
    match (changed, enabled) {
        (true, true) => println!("endpoint {endpoint} enabled; queued deliveries go out when due"),
        (true, false) => println!("endpoint {endpoint} disabled; its queued deliveries wait"),
        (false, true) => println!("endpoint {endpoint} was already enabled"),
        (false, false) => println!("endpoint {endpoint} was already disabled"),
    }
    Ok(())
}
