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
    // Logs go to stderr, so a command's output on stdout stays clean for scripts
    // (`KEY=$(samgate clients keys create …)`), and colours only when stderr is a terminal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
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

/// The process-wide Prometheus recorder (installed on first use; metrics are process-global).
pub fn metrics() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const LATENCY: &[f64] = &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            // Series nobody touched for an hour go away, so label sets cannot pile up forever.
            PrometheusBuilder::new()
                .idle_timeout(
                    metrics_util::MetricKindMask::COUNTER | metrics_util::MetricKindMask::HISTOGRAM,
                    Some(std::time::Duration::from_secs(3600)),
                )
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// An HTTP status as a metric label without allocating per request: every status from 100 to
/// 999 is written once, on first use.
pub fn status_label(status: u16) -> &'static str {
    static LABELS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (0..1000u16).map(|s| s.to_string()).collect());
    LABELS
        .get(usize::from(status))
        .map_or("other", String::as_str)
}
