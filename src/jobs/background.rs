//! The tasks that run beside the HTTP server: the call-record writer, API-key revocation
//! listening and `last_used_at` flushing, and the lifecycle jobs (keep-alive, customer directory sync, webhook delivery,
//! housekeeping; `SAMGATE_BACKGROUND_JOBS`). Started once per process; stopped with a flush.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::proxy::CallRecorder;

/// Running background tasks.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts the background tasks of `app`.
    pub fn start(app: Arc<App>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(queue) = app.take_call_records() {
            let pool = app.pool.clone();
            tasks.push(tokio::spawn(CallRecorder::run_writer(
                queue,
                pool,
                wait_for(stopped.clone()),
            )));
        }
        // API keys: revocations from other instances (LISTEN/NOTIFY) and batched `last_used_at`.
        tasks.push(app.api_keys.spawn_background(wait_for(stopped.clone())));
        if app.config.lifecycle.background_jobs {
            spawn_jobs(&app, &stopped, &mut tasks);
        }
        Self { stop, tasks }
    }

    /// Starts only the jobs (keep-alive, customer sync, webhook delivery, housekeeping): `samgate worker`.
    pub fn start_jobs(app: Arc<App>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        spawn_jobs(&app, &stopped, &mut tasks);
        Self { stop, tasks }
    }

    /// Signals every task to finish its work (flushing queued records) and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The job loops: each runs its job's `run_once` every interval (the first time after one to two
/// intervals, so instances started together do not run in step and a process that only lives
/// briefly, like a test, never runs them) until told to stop.
fn spawn_jobs(app: &Arc<App>, stopped: &watch::Receiver<bool>, tasks: &mut Vec<JoinHandle<()>>) {
    use super::{housekeeping, keep_alive};
    let lifecycle = &app.config.lifecycle;
    tasks.push(spawn_every(
        "keep_alive",
        app.clone(),
        lifecycle.keepalive_interval,
        stopped.clone(),
        |app: Arc<App>| async move {
            let summary = keep_alive::run_once(&app, app.clock.now()).await?;
            if summary != keep_alive::Summary::default() {
                tracing::info!(%summary, "keep-alive cycle");
            }
            Ok(())
        },
    ));
    tasks.push(spawn_every(
        "webhook_delivery",
        app.clone(),
        lifecycle.webhook_poll_interval,
        stopped.clone(),
        |app: Arc<App>| async move {
            crate::webhooks::run_once(&app, app.clock.now()).await?;
            Ok(())
        },
    ));
    // Customer directories: looked at often, each partner synced when its directory is older
    // than SAMGATE_CUSTOMER_SYNC_INTERVAL_SECS.
    let sync_poll = app
        .config
        .customers
        .sync_interval
        .try_into()
        .unwrap_or(std::time::Duration::from_secs(300))
        .min(std::time::Duration::from_secs(300));
    tasks.push(spawn_every(
        "customer_sync",
        app.clone(),
        sync_poll,
        stopped.clone(),
        |app: Arc<App>| async move {
            let synced = crate::customers::run_once(&app, app.clock.now()).await?;
            if synced > 0 {
                tracing::info!(partners = synced, "customer directories synced");
            }
            Ok(())
        },
    ));
    tasks.push(spawn_every(
        "housekeeping",
        app.clone(),
        lifecycle.housekeeping_interval,
        stopped.clone(),
        |app: Arc<App>| async move {
            let summary = housekeeping::run_once(&app, app.clock.now()).await?;
            tracing::debug!(?summary, "housekeeping");
            Ok(())
        },
    ));
}

fn spawn_every<F, Fut>(
    name: &'static str,
    app: Arc<App>,
    interval: std::time::Duration,
    stopped: watch::Receiver<bool>,
    job: F,
) -> JoinHandle<()>
where
    F: Fn(Arc<App>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        use rand::RngExt;
        let millis = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut delay =
            interval + std::time::Duration::from_millis(rand::rng().random_range(0..millis));
        let stop = wait_for(stopped);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(delay) => {}
            }
            // A run in progress finishes before the stop is seen: its claims commit or expire.
            if let Err(err) = job(app.clone()).await {
                tracing::warn!(job = name, error = %format!("{err:#}"), "background job failed");
            }
            delay = interval;
        }
    })
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}
