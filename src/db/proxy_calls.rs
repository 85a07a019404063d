//! The `proxy_calls` table, written in batches.

use std::collections::BTreeSet;

use sqlx::PgPool;
use uuid::Uuid;

use crate::proxy::CallRecord;

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
    .bind(records.iter().map(|r| r.method.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.route).collect::<Vec<_>>())
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
