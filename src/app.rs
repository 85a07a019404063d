//! The application object: everything a request or job needs, built once at start.

use std::sync::Arc;

use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::Config;

/// Shared services of one samgate process.
#[derive(Debug)]
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// The PostgreSQL pool.
    pub pool: PgPool,
    /// The source of time.
    pub clock: Arc<dyn Clock>,
}

/// The axum state: a cheap handle onto [`App`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
