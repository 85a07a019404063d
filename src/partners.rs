//! Cached partner lookups by tenant id for the proxy's hot path: a few seconds of staleness at
//! most, invalidated at once by this instance when it changes a partner's state.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db;
use crate::domain::PartnerStatus;

/// What the proxy needs to know about a partner.
#[derive(Debug, Clone)]
pub struct PartnerInfo {
    /// samgate's id.
    pub id: Uuid,
    /// The partner's tenant.
    pub tenant_id: Uuid,
    /// Organisation name.
    pub display_name: String,
    /// Health state.
    pub status: PartnerStatus,
    /// Microsoft code behind the state.
    pub status_code: Option<String>,
    /// Advice behind the state.
    pub status_reason: Option<String>,
}

/// Partner lookups, cached briefly (positive and negative).
#[derive(Clone)]
pub struct PartnerDirectory {
    pool: PgPool,
    cache: Cache<Uuid, Option<Arc<PartnerInfo>>, crate::cache::Hasher>,
}

impl std::fmt::Debug for PartnerDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerDirectory")
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl PartnerDirectory {
    /// A directory over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(5))
                .build_with_hasher(crate::cache::Hasher::default()),
        }
    }

    /// The partner with this tenant id (one database query per tenant per few seconds).
    pub async fn by_tenant(
        &self,
        tenant_id: Uuid,
    ) -> Result<Option<Arc<PartnerInfo>>, Arc<sqlx::Error>> {
        let pool = self.pool.clone();
        self.cache
            .try_get_with(tenant_id, async move {
                let partner = db::partners::find_by_tenant(&pool, tenant_id).await?;
                Ok::<_, sqlx::Error>(partner.map(|p| {
                    Arc::new(PartnerInfo {
                        id: p.id,
                        tenant_id: p.tenant_id,
                        display_name: p.display_name,
                        status: p.status,
                        status_code: p.status_code,
                        status_reason: p.status_reason,
                    })
                }))
            })
            .await
    }

    /// The cached status, without a database query.
    pub async fn cached_status(&self, tenant_id: Uuid) -> Option<PartnerStatus> {
        self.cache.get(&tenant_id).await.flatten().map(|p| p.status)
    }

    /// Forgets a partner (its state changed).
    pub async fn invalidate(&self, tenant_id: Uuid) {
        self.cache.invalidate(&tenant_id).await;
    }
}
