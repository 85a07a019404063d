//! The `proxy_calls` table, written in batches.

use std::collections::BTreeSet;

use sqlx::PgPool;
use uuid::Uuid;

/// One proxied call (never bodies or tokens).
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// When.
    pub occurred_at: time::OffsetDateTime,
    /// Which API client.
    pub client_id: Option<Uuid>,
    /// Partner grant used (for `last_used_at`).
    pub partner_id: Option<Uuid>,
    /// Partner tenant.
    pub partner_tenant_id: Uuid,
    /// Customer tenant, for customer Graph calls.
    pub customer_tenant_id: Option<Uuid>,
    /// `partner-center` or `graph`.
    pub upstream: &'static str,
    /// HTTP method (`GET`, `POST`, … or the extension method as sent).
    pub method: http::Method,
    /// Route template, as the router matched it.
    pub route: std::sync::Arc<str>,
    /// Status returned to the caller.
    pub status: u16,
    /// Time to response headers.
    pub latency_ms: u32,
    /// `MS-RequestId`.
    pub request_id: Option<String>,
    /// `MS-CorrelationId`.
    pub correlation_id: Option<String>,
    /// samgate's error code when samgate answered itself.
    pub error_code: Option<&'static str>,
}

/// Inserts a batch of call records and notes the use of each grant, in one transaction.
pub async fn insert_batch(pool: &PgPool, records: &[CallRecord]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // One statement text whatever the batch size (arrays, not a VALUES list), so neither sqlx nor
    // PostgreSQL caches a prepared statement per batch size (BENCHMARKS.md).
    sqlx::query(
        "INSERT INTO proxy_calls (occurred_at, client_id, partner_tenant_id, customer_tenant_id, upstream, \
         method, route, status, latency_ms, request_id, correlation_id, error_code) \
         SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], \
         $6::text[], $7::text[], $8::int4[], $9::int4[], $10::text[], $11::text[], $12::text[])",
    )
    .bind(records.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.client_id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.partner_tenant_id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.customer_tenant_id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.upstream).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.method.as_str()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| &*r.route).collect::<Vec<_>>())
    .bind(records.iter().map(|r| i32::from(r.status)).collect::<Vec<_>>())
    .bind(
        records
            .iter()
            .map(|r| i32::try_from(r.latency_ms).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(records.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.correlation_id.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.error_code).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let used: BTreeSet<Uuid> = records
        .iter()
        .filter(|r| r.status < 400)
        .filter_map(|r| r.partner_id)
        .collect();
    if let Some(latest) = records.iter().map(|r| r.occurred_at).max()
        && !used.is_empty()
    {
        let ids: Vec<Uuid> = used.into_iter().collect();
        crate::db::grants::touch_last_used(&mut *tx, &ids, latest).await?;
    }
    tx.commit().await
}
