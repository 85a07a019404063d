//! Logging set-up: human-readable lines by default, JSON lines by a switch.
//!
//! Log fields are dotted and stable (`http.route`, `request.id`, `partner.tenant_id`); nothing here
//! or anywhere else logs tokens, codes, cookies, emails or bodies.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides the default filter.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // A second call (tests, `demo` after a failed start) keeps the first subscriber.
    drop(installed);
}
