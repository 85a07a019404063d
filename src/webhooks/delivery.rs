//! The delivery worker: leases due deliveries (`SKIP LOCKED`), POSTs them signed, and records the
//! answer; failures retry with exponential backoff and jitter until `max attempts`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use time::OffsetDateTime;

use super::guard::{AddressPolicy, GuardedResolver, check, refusal_in};
use super::signature::{WebhookSecret, sign};
use crate::app::App;
use crate::db;
use crate::db::webhooks::{Attempt, Delivery};
use crate::vault::SealContext;

/// Deliveries leased per batch.
const BATCH: i64 = 100;
/// Deliveries in flight at once.
const CONCURRENCY: usize = 16;
/// A lease outlives the slowest attempt (timeout below) with room to record it.
const LEASE: time::Duration = time::Duration::minutes(2);
const TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a receiver's answer is kept for operators.
const SNIPPET_BYTES: usize = 512;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    /// Accepted by the receiver (2xx).
    pub delivered: u64,
    /// Failed, will be retried.
    pub retrying: u64,
    /// Failed for the last time.
    pub failed: u64,
}

/// Delivers every due delivery (batch after batch until none is due); idempotent.
pub async fn run_once(app: &App, now: OffsetDateTime) -> anyhow::Result<DeliverySummary> {
    let mut summary = DeliverySummary::default();
    let mut client = None;
    loop {
        let batch = db::webhooks::claim_due(&app.pool, now, now + LEASE, BATCH).await?;
        if batch.is_empty() {
            return Ok(summary);
        }
        let full = batch.len() as i64 == BATCH;
        let client = match &client {
            Some(client) => client,
            None => client.insert(webhook_client(policy(app))?),
        };
        let outcomes: Vec<Outcome> = futures_util::stream::iter(batch)
            .map(|delivery| deliver(app, client, delivery))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for outcome in outcomes {
            let label = match outcome {
                Outcome::Delivered => {
                    summary.delivered += 1;
                    "delivered"
                }
                Outcome::Retrying => {
                    summary.retrying += 1;
                    "retrying"
                }
                Outcome::Failed => {
                    summary.failed += 1;
                    "failed"
                }
            };
            metrics::counter!("samgate_webhook_deliveries_total", "outcome" => label).increment(1);
        }
        if !full {
            return Ok(summary);
        }
    }
}

fn policy(app: &App) -> AddressPolicy {
    if app.config.lifecycle.webhooks_allow_private {
        AddressPolicy::AllowPrivate
    } else {
        AddressPolicy::PublicOnly
    }
}

/// The webhook client: its resolver is the SSRF guard, it ignores proxy variables (a proxy would
/// resolve names itself, past the guard) and never follows redirects (to somewhere internal).
fn webhook_client(policy: AddressPolicy) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(TIMEOUT)
        .user_agent(concat!("samgate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

enum Outcome {
    Delivered,
    Retrying,
    Failed,
}

struct Answer {
    status: Option<i32>,
    error: Option<String>,
    snippet: Option<String>,
}

async fn deliver(app: &App, client: &reqwest::Client, delivery: Delivery) -> Outcome {
    let answer = attempt(app, client, &delivery).await;
    let at = app.clock.now();
    let ok = answer.error.is_none() && answer.status.is_some_and(|s| (200..300).contains(&s));
    let record = Attempt {
        at,
        status: answer.status,
        error: answer.error.as_deref(),
        response: answer.snippet.as_deref(),
    };
    let attempts = u32::try_from(delivery.attempts).unwrap_or(0) + 1;
    let (result, outcome) = if ok {
        (
            db::webhooks::mark_delivered(&app.pool, delivery.id, &record).await,
            Outcome::Delivered,
        )
    } else if attempts >= app.config.lifecycle.webhook_max_attempts {
        (
            db::webhooks::mark_attempt_failed(&app.pool, delivery.id, &record, None).await,
            Outcome::Failed,
        )
    } else {
        let next = at + backoff(attempts);
        (
            db::webhooks::mark_attempt_failed(&app.pool, delivery.id, &record, Some(next)).await,
            Outcome::Retrying,
        )
    };
    if let Err(err) = result {
        // The lease runs out and the delivery is attempted again: at-least-once.
        tracing::warn!(webhook.delivery_id = delivery.id, error = %err, "cannot record a webhook attempt");
    }
    tracing::info!(
        webhook.delivery_id = delivery.id,
        webhook.endpoint_id = %delivery.endpoint_id,
        webhook.event_type = %delivery.event_type,
        upstream.status = answer.status,
        delivered = ok,
        "webhook attempt"
    );
    outcome
}

/// 10 s, 30 s, 90 s, 4.5 min… (×3 per attempt, at most 12 h), each ±25 %.
pub fn backoff(attempts: u32) -> time::Duration {
    use rand::RngExt;
    let base = 10f64 * 3f64.powi(i32::try_from(attempts.saturating_sub(1).min(10)).unwrap_or(10));
    let base = base.min(12.0 * 3600.0);
    let factor = rand::rng().random_range(0.75..=1.25);
    time::Duration::seconds_f64(base * factor)
}

async fn attempt(app: &App, client: &reqwest::Client, delivery: &Delivery) -> Answer {
    let failed = |error: String| Answer {
        status: None,
        error: Some(error),
        snippet: None,
    };
    let url = match url::Url::parse(&delivery.url) {
        Ok(url) => url,
        Err(_) => return failed("the endpoint URL is not a valid URL".into()),
    };
    // Literal addresses never reach the resolver: check them here.
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal
        && let Err(refused) = check(ip, policy(app))
    {
        return failed(refused.to_string());
    }
    let secrets = match signing_secrets(app, delivery).await {
        Ok(secrets) if !secrets.is_empty() => secrets,
        Ok(_) => return failed("the endpoint has no signing secret".into()),
        Err(err) => return failed(format!("signing secrets unavailable: {err}")),
    };
    let body = match serde_json::to_vec(&delivery.payload) {
        Ok(body) => body,
        Err(err) => return failed(format!("payload: {err}")),
    };
    let timestamp = app.clock.now().unix_timestamp();
    let signature = sign(&secrets, &delivery.message_id, timestamp, &body);
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(mut response) => {
            let status = i32::from(response.status().as_u16());
            let mut snippet = Vec::new();
            while snippet.len() < SNIPPET_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            snippet.truncate(SNIPPET_BYTES);
            Answer {
                status: Some(status),
                error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
                snippet: Some(String::from_utf8_lossy(&snippet).into_owned()),
            }
        }
        Err(err) => match refusal_in(&err) {
            Some(refused) => failed(refused.to_string()),
            None => failed(error_chain(&err.without_url())),
        },
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

async fn signing_secrets(app: &App, delivery: &Delivery) -> anyhow::Result<Vec<WebhookSecret>> {
    let stored =
        db::webhooks::signing_secrets(&app.pool, delivery.endpoint_id, app.clock.now()).await?;
    stored
        .iter()
        .map(|s| {
            let row = s.id.to_string();
            let text = app.vault.open_string(
                &s.sealed_secret,
                &SealContext::new(super::SECRET_PURPOSE, &row),
            )?;
            use secrecy::ExposeSecret;
            WebhookSecret::parse(text.expose_secret())
                .ok_or_else(|| anyhow::anyhow!("stored webhook secret {} is malformed", s.id))
        })
        .collect()
}
