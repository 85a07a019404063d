//! The tasks that run beside the HTTP server: the call-record writer (and, as they arrive,
//! revocation listening and keep-alive). Started once per process; stopped with a flush.

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

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}
