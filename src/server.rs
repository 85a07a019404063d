//! Running samgate: the one way `serve`, `demo` and the test harness start the server, so what
//! runs in tests is what runs in production (key-ring check, background tasks, metrics listener,
//! draining, call records flushed before the pool closes).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{App, AppState};
use crate::jobs::background::Background;
use crate::web;

/// Where the server listens.
pub struct Listeners {
    /// The HTTP listener for every route.
    pub http: TcpListener,
    /// A separate listener for `/metrics` (`SAMGATE_METRICS_LISTEN`), if configured.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of the configuration, naming the setting when one is taken.
    pub async fn bind(app: &App) -> anyhow::Result<Self> {
        let http = TcpListener::bind(app.config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (set SAMGATE_LISTEN to another address)",
                    app.config.listen
                )
            })?;
        let metrics =
            match app.config.metrics_listen {
                Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                    format!("cannot listen on SAMGATE_METRICS_LISTEN {address}")
                })?),
                None => None,
            };
        Ok(Self { http, metrics })
    }
}

/// Checks the key ring against the stored secrets, starts the background tasks, serves until
/// `shutdown` resolves, drains in-flight requests, then stops the background tasks (flushing the
/// call records).
pub async fn launch(
    app: Arc<App>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    app.check_key_ring().await?;
    let background = Background::start(app.clone());
    let state = AppState(app);
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(listener) = listeners.metrics {
        let metrics = web::metrics_router(state.clone());
        tokio::spawn(web::serve(metrics, listener, async move {
            let _ = metrics_stopped.await;
        }));
    }
    let router = web::router(state);
    tracing::info!(listen = %listeners.http.local_addr()?, "samgate is serving");
    let served = web::serve(router, listeners.http, shutdown).await;
    let _ = stop_metrics.send(());
    background.stop().await;
    served.context("the HTTP server failed")
}
