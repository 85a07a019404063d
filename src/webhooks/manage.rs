//! Registering endpoints, rotating their secrets with an overlap, disabling and enabling them,
//! replaying deliveries; each change is audited in its own transaction. The admin UI and the CLI
//! both call these functions.

use time::OffsetDateTime;
use uuid::Uuid;

use super::signature::WebhookSecret;
use super::{EventType, SECRET_PURPOSE};
use crate::app::App;
use crate::db;
use crate::db::webhooks::Endpoint;
use crate::domain::Actor;
use crate::vault::SealContext;

/// Why a webhook change was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not an absolute http(s) URL with a host, or it carries credentials.
    #[error("the webhook URL must be an absolute http or https URL without user or password")]
    InvalidUrl,
    /// The description is longer than [`DESCRIPTION_MAX_CHARS`].
    #[error("the description is at most {DESCRIPTION_MAX_CHARS} characters")]
    DescriptionTooLong,
    /// An event type samgate does not emit.
    #[error("unknown event type {0:?} (known: {known})", known = known_types())]
    UnknownEventType(String),
    /// No such endpoint or delivery.
    #[error("no webhook {0} exists")]
    NotFound(String),
    /// Sealing failed.
    #[error("sealing the secret failed: {0}")]
    Vault(#[from] crate::vault::VaultError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The longest description an endpoint may have.
pub const DESCRIPTION_MAX_CHARS: usize = 500;

fn known_types() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_url(text: &str) -> Result<url::Url, WebhookError> {
    let url = url::Url::parse(text.trim()).map_err(|_| WebhookError::InvalidUrl)?;
    let valid = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none();
    valid.then_some(url).ok_or(WebhookError::InvalidUrl)
}

/// Registers an endpoint for `event_types` (empty: all) and returns it with its first secret,
/// which is shown only now (samgate keeps it sealed).
pub async fn add_endpoint(
    app: &App,
    url: &str,
    event_types: &[String],
    description: Option<&str>,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<(Endpoint, WebhookSecret), WebhookError> {
    let url = parse_url(url)?;
    if description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX_CHARS) {
        return Err(WebhookError::DescriptionTooLong);
    }
    let mut types = Vec::new();
    for name in event_types {
        let event = EventType::parse(name.trim())
            .ok_or_else(|| WebhookError::UnknownEventType(name.clone()))?;
        types.push(event.as_str().to_owned());
    }
    types.sort();
    types.dedup();
    let secret = WebhookSecret::generate();
    let mut tx = app.pool.begin().await?;
    let endpoint =
        db::webhooks::insert_endpoint(&mut *tx, url.as_str(), &types, description, actor, now)
            .await?;
    store_secret(app, &mut tx, endpoint.id, &secret, now).await?;
    db::audit::record(
        &mut *tx,
        actor,
        "webhook.endpoint_added",
        None,
        serde_json::json!({ "endpoint_id": endpoint.id, "url": endpoint.url, "event_types": types }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((endpoint, secret))
}

async fn store_secret(
    app: &App,
    tx: &mut sqlx::PgConnection,
    endpoint_id: Uuid,
    secret: &WebhookSecret,
    now: OffsetDateTime,
) -> Result<(), WebhookError> {
    let id = Uuid::now_v7();
    let row = id.to_string();
    let sealed = app.vault.seal(
        secret.expose().as_bytes(),
        &SealContext::new(SECRET_PURPOSE, &row),
    )?;
    let kek = i32::try_from(sealed.kek_id).unwrap_or(i32::MAX);
    db::webhooks::insert_secret(&mut *tx, id, endpoint_id, &sealed.bytes, kek, now).await?;
    Ok(())
}

/// Issues a new secret; the previous one keeps signing for the configured overlap, so receivers
/// can switch without rejecting a message. Returns the new secret (shown once).
pub async fn rotate_secret(
    app: &App,
    endpoint_id: Uuid,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<WebhookSecret, WebhookError> {
    let mut tx = app.pool.begin().await?;
    db::webhooks::find_endpoint(&mut *tx, endpoint_id)
        .await?
        .ok_or_else(|| WebhookError::NotFound(format!("endpoint {endpoint_id}")))?;
    let overlap_until = now + app.config.lifecycle.webhook_secret_overlap;
    db::webhooks::expire_current_secrets(&mut *tx, endpoint_id, overlap_until).await?;
    let secret = WebhookSecret::generate();
    store_secret(app, &mut tx, endpoint_id, &secret, now).await?;
    db::audit::record(
        &mut *tx,
        actor,
        "webhook.secret_rotated",
        None,
        serde_json::json!({ "endpoint_id": endpoint_id, "previous_secret_signs_until": overlap_until.unix_timestamp() }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(secret)
}

/// Disables (`enabled` false) or enables an endpoint. A disabled endpoint gets no new deliveries
/// and its queued ones wait; enabling it sends those again when due. Returns false, and records
/// nothing, when the endpoint already was in that state.
pub async fn set_endpoint_enabled(
    app: &App,
    endpoint_id: Uuid,
    enabled: bool,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<bool, WebhookError> {
    let mut tx = app.pool.begin().await?;
    let endpoint = db::webhooks::lock_endpoint(&mut *tx, endpoint_id)
        .await?
        .ok_or_else(|| WebhookError::NotFound(format!("endpoint {endpoint_id}")))?;
    if endpoint.disabled_at.is_none() == enabled {
        return Ok(false);
    }
    db::webhooks::set_disabled_at(&mut *tx, endpoint_id, (!enabled).then_some(now)).await?;
    let action = if enabled {
        "webhook.endpoint_enabled"
    } else {
        "webhook.endpoint_disabled"
    };
    db::audit::record(
        &mut *tx,
        actor,
        action,
        None,
        serde_json::json!({ "endpoint_id": endpoint_id, "url": endpoint.url }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Queues a delivery again with its original `webhook-id` (receivers deduplicate by it).
pub async fn replay(
    app: &App,
    delivery_id: i64,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<(), WebhookError> {
    let mut tx = app.pool.begin().await?;
    if !db::webhooks::replay(&mut *tx, delivery_id, now).await? {
        return Err(WebhookError::NotFound(format!("delivery {delivery_id}")));
    }
    db::audit::record(
        &mut *tx,
        actor,
        "webhook.replayed",
        None,
        serde_json::json!({ "delivery_id": delivery_id }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_are_accepted() {
        assert!(parse_url("https://hooks.example.com/samgate").is_ok());
        assert!(parse_url("http://localhost:9000/x").is_ok());
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("https://user:pw@example.com/").is_err());
        assert!(parse_url("/relative").is_err());
    }
}
