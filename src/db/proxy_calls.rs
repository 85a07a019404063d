//! The `proxy_calls` table, written in batches.

use std::collections::BTreeSet;

use sqlx::PgPool;
use uuid::Uuid;

use crate::proxy::CallRecord;

/// Inserts a batch of call records and notes the use of each grant, in one transaction.
pub async fn insert_batch(pool: &PgPool, records: &[CallRecord]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut builder = sqlx::QueryBuilder::new(
        "INSERT INTO proxy_calls (occurred_at, client_id, partner_tenant_id, customer_tenant_id, upstream, \
         method, route, status, latency_ms, request_id, correlation_id, error_code) ",
    );
    builder.push_values(records, |mut row, r| {
        row.push_bind(r.occurred_at)
            .push_bind(r.client_id)
            .push_bind(r.partner_tenant_id)
            .push_bind(r.customer_tenant_id)
            .push_bind(r.upstream)
            .push_bind(r.method.clone())
            .push_bind(r.route)
            .push_bind(i32::from(r.status))
            .push_bind(i32::try_from(r.latency_ms).unwrap_or(i32::MAX))
            .push_bind(r.request_id.clone())
            .push_bind(r.correlation_id.clone())
            .push_bind(r.error_code);
    });
    builder.build().execute(&mut *tx).await?;
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
