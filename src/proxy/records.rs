//! The record of proxied calls, written off the hot path: a bounded queue drained in batches by a
//! background task. A batch the database cannot take yet (it is restarting or unreachable) is kept
//! and retried; a record is lost only when the queue is full or the database refuses its batch,
//! and every loss is counted, never waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

pub use crate::db::proxy_calls::CallRecord;

/// The sending side of the call-record queue.
#[derive(Clone, Debug)]
pub struct CallRecorder {
    sender: mpsc::Sender<CallRecord>,
    dropped: Arc<AtomicU64>,
}

/// The receiving side, drained by [`CallRecorder::run_writer`].
#[derive(Debug)]
pub struct CallRecordQueue {
    receiver: mpsc::Receiver<CallRecord>,
    dropped: Arc<AtomicU64>,
}

const BATCH: usize = 500;
/// How long a batch gathers records after its first one.
const GATHER_WINDOW: Duration = Duration::from_millis(200);
/// How often the queue is read while a batch gathers: at the queue's default capacity (10,000)
/// a tick holds up to 200,000 calls a second before anything is dropped.
const GATHER_TICK: Duration = Duration::from_millis(50);
/// The first wait before a batch is offered to an unreachable database again; it doubles up to
/// [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

impl CallRecorder {
    /// A queue holding at most `capacity` records.
    pub fn new(capacity: usize) -> (Self, CallRecordQueue) {
        let (sender, receiver) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            Self {
                sender,
                dropped: dropped.clone(),
            },
            CallRecordQueue { receiver, dropped },
        )
    }

    /// Queues a record without waiting; a full queue drops it and counts the drop.
    pub fn record(&self, record: CallRecord) {
        if self.sender.try_send(record).is_err() {
            count_lost(&self.dropped, 1);
        }
    }

    /// Records waiting to be written.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Records lost: dropped because the queue was full, or refused by the database.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes queued records in batches until `shutdown` resolves, then flushes what is queued.
    /// While the database is unreachable the batch in hand is retried with backoff and new
    /// records wait in the queue.
    pub async fn run_writer(
        queue: CallRecordQueue,
        pool: PgPool,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let CallRecordQueue {
            mut receiver,
            dropped,
        } = queue;
        let mut batch = Vec::with_capacity(BATCH);
        tokio::pin!(shutdown);
        loop {
            let first = tokio::select! {
                record = receiver.recv() => record,
                () = &mut shutdown => None,
            };
            let Some(first) = first else { break };
            batch.push(first);
            // Gather what arrives within a short window, up to a batch. The queue is read in
            // bulk every tick rather than record by record: waiting on each record would wake
            // this task (and often a parked worker thread) once per proxied call.
            let deadline = tokio::time::Instant::now() + GATHER_WINDOW;
            loop {
                let open = drain_into(&mut receiver, &mut batch);
                let now = tokio::time::Instant::now();
                if !open || batch.len() >= BATCH || now >= deadline {
                    break;
                }
                tokio::time::sleep_until(deadline.min(now + GATHER_TICK)).await;
            }
            if write_until_stored(&pool, &mut batch, &dropped, shutdown.as_mut()).await {
                break;
            }
        }
        // No new records; drain what is queued, the batch in hand (if any) first.
        receiver.close();
        while let Some(record) = receiver.recv().await {
            batch.push(record);
            if batch.len() >= BATCH {
                write_once(&pool, &mut batch, &dropped).await;
            }
        }
        write_once(&pool, &mut batch, &dropped).await;
    }
}

/// Moves queued records into `batch` without waiting, up to [`BATCH`]; false once the queue is
/// closed and empty.
fn drain_into(receiver: &mut mpsc::Receiver<CallRecord>, batch: &mut Vec<CallRecord>) -> bool {
    while batch.len() < BATCH {
        match receiver.try_recv() {
            Ok(record) => batch.push(record),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

fn count_lost(dropped: &AtomicU64, records: usize) {
    let records = u64::try_from(records).unwrap_or(u64::MAX);
    dropped.fetch_add(records, Ordering::Relaxed);
    metrics::counter!("samgate_call_records_dropped_total").increment(records);
}

/// Writes `batch`, waiting out an unreachable database with backoff; a batch the database
/// refuses is counted as lost. True when `shutdown` resolved first (the batch is kept for the
/// final flush).
async fn write_until_stored(
    pool: &PgPool,
    batch: &mut Vec<CallRecord>,
    dropped: &AtomicU64,
    mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> bool {
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match crate::db::proxy_calls::insert_batch(pool, batch).await {
            Ok(()) => {
                batch.clear();
                return false;
            }
            Err(err) if unreachable(&err) => {
                if delay == FIRST_RETRY_DELAY {
                    tracing::warn!(records = batch.len(), error = %err, "cannot write proxy call records yet; keeping them");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut shutdown => return true,
                }
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(err) => {
                tracing::warn!(records = batch.len(), error = %err, "proxy call records refused by the database; counted as dropped");
                count_lost(dropped, batch.len());
                batch.clear();
                return false;
            }
        }
    }
}

/// One attempt (at shutdown); what cannot be written is counted as lost.
async fn write_once(pool: &PgPool, batch: &mut Vec<CallRecord>, dropped: &AtomicU64) {
    if batch.is_empty() {
        return;
    }
    if let Err(err) = crate::db::proxy_calls::insert_batch(pool, batch).await {
        tracing::warn!(records = batch.len(), error = %err, "could not write proxy call records; counted as dropped");
        count_lost(dropped, batch.len());
    }
    batch.clear();
}

/// Whether `err` means the database is away (down, restarting, closed, overloaded) rather than
/// refusing these rows: such a batch is worth offering again, a refused one never is.
fn unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection), 53 (resources), 57 (shutdown, crash, starting up),
        // 58 (system I/O); 55000 is a database closed to connections; 40001/40P01 lost a race.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            ["08", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
                || matches!(&*code, "55000" | "40001" | "40P01")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{BATCH, CallRecord, CallRecorder, drain_into, unreachable};

    fn record(status: u16) -> CallRecord {
        CallRecord {
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            client_id: None,
            partner_id: None,
            partner_tenant_id: uuid::Uuid::nil(),
            customer_tenant_id: None,
            upstream: "partner-center",
            method: http::Method::GET,
            route: "/v1/customers".into(),
            status,
            latency_ms: 1,
            request_id: None,
            correlation_id: None,
            error_code: None,
        }
    }

    #[test]
    fn a_batch_takes_what_is_queued_in_order_up_to_its_size_and_leaves_the_rest_queued() {
        let (recorder, queue) = CallRecorder::new(BATCH * 2);
        let mut receiver = queue.receiver;
        for status in 0..BATCH + 3 {
            recorder.record(record(u16::try_from(status).expect("a small count")));
        }
        let mut batch = Vec::new();
        assert!(
            drain_into(&mut receiver, &mut batch),
            "the queue is still open"
        );
        assert_eq!(batch.len(), BATCH);
        assert!(
            batch
                .iter()
                .enumerate()
                .all(|(i, r)| usize::from(r.status) == i)
        );
        assert_eq!(
            recorder.queue_depth(),
            3,
            "the rest waits for the next batch"
        );

        batch.clear();
        drop(recorder);
        assert!(
            !drain_into(&mut receiver, &mut batch),
            "closed once the senders are gone"
        );
        assert_eq!(
            batch.len(),
            3,
            "what was queued before the close is still taken"
        );
    }

    #[test]
    fn an_unreachable_database_is_waited_for_and_a_refusal_is_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(unreachable(&sqlx::Error::Io(refused)));
        assert!(unreachable(&sqlx::Error::PoolTimedOut));
        assert!(!unreachable(&sqlx::Error::PoolClosed));
        assert!(!unreachable(&sqlx::Error::RowNotFound));
        assert!(!unreachable(&sqlx::Error::ColumnNotFound("status".into())));
    }
}
