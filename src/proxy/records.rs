//! The record of proxied calls, written off the hot path: a bounded queue drained in batches by a
//! background task; when the queue is full a record is dropped and counted, never waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

/// One proxied call (never bodies or tokens).
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// When.
    pub occurred_at: OffsetDateTime,
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
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: &'static str,
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

/// The sending side of the call-record queue.
#[derive(Clone, Debug)]
pub struct CallRecorder {
    sender: mpsc::Sender<CallRecord>,
    dropped: Arc<AtomicU64>,
}

/// The receiving side, drained by [`CallRecorder::run_writer`].
#[derive(Debug)]
pub struct CallRecordQueue(mpsc::Receiver<CallRecord>);

const BATCH: usize = 500;

impl CallRecorder {
    /// A queue holding at most `capacity` records.
    pub fn new(capacity: usize) -> (Self, CallRecordQueue) {
        let (sender, receiver) = mpsc::channel(capacity);
        (
            Self {
                sender,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            CallRecordQueue(receiver),
        )
    }

    /// Queues a record without waiting; a full queue drops it and counts the drop.
    pub fn record(&self, record: CallRecord) {
        if self.sender.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("samgate_call_records_dropped_total").increment(1);
        }
    }

    /// Records waiting to be written.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes queued records in batches until `shutdown` resolves, then flushes what is queued.
    pub async fn run_writer(
        queue: CallRecordQueue,
        pool: PgPool,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let CallRecordQueue(mut receiver) = queue;
        let mut batch = Vec::with_capacity(BATCH);
        tokio::pin!(shutdown);
        loop {
            let first = tokio::select! {
                record = receiver.recv() => record,
                () = &mut shutdown => {
                    // No new records; drain what is queued.
                    receiver.close();
                    while let Some(record) = receiver.recv().await {
                        batch.push(record);
                        if batch.len() >= BATCH {
                            write_batch(&pool, &mut batch).await;
                        }
                    }
                    break;
                }
            };
            let Some(first) = first else { break };
            batch.push(first);
            // Gather what arrives within a short window, up to a batch.
            let deadline = tokio::time::sleep(Duration::from_millis(200));
            tokio::pin!(deadline);
            while batch.len() < BATCH {
                tokio::select! {
                    next = receiver.recv() => match next {
                        Some(record) => batch.push(record),
                        None => break,
                    },
                    () = &mut deadline => break,
                }
            }
            write_batch(&pool, &mut batch).await;
        }
        write_batch(&pool, &mut batch).await;
    }
}

async fn write_batch(pool: &PgPool, batch: &mut Vec<CallRecord>) {
    if batch.is_empty() {
        return;
    }
    if let Err(err) = crate::db::proxy_calls::insert_batch(pool, batch).await {
        tracing::warn!(records = batch.len(), error = %err, "could not write proxy call records");
    }
    batch.clear();
}
