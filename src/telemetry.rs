//! Logging set-up: human-readable lines by default, JSON lines by a switch.
//!
//! Log fields are dotted and stable (`http.route`, `request.id`, `partner.tenant_id`); nothing here
//! or anywhere else logs tokens, codes, cookies, emails or bodies.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

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
        LogFormat::Text => builder.fmt_fields(PlainFields).try_init(),
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

/// Fields of text lines exactly as tracing-subscriber's default writes them without colours
/// (`name=value`, space-separated; messages and errors by the default itself, with its escaping
/// of terminal control sequences), but without passing every field name through its ANSI painter,
/// which cost each proxied call's span about a thousand instructions per field (BENCHMARKS.md).
/// With colours on (a terminal), the default formats everything.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Lets the default visitor write one field (it pads and escapes as it always does).
    fn by_default(&mut self, write: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        write(&mut default);
        self.result = default.finish();
        self.is_empty = false;
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.by_default(|default| default.record_str(field, value));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_default(|default| default.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if name == "message" {
            return self.by_default(|default| default.record_debug(field, value));
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let pad = if self.is_empty { "" } else { " " };
        self.is_empty = false;
        // Plain text straight through; only the value needs the formatting machinery.
        self.result = (|| {
            self.writer.write_str(pad)?;
            self.writer.write_str(name)?;
            self.writer.write_char('=')?;
            write!(self.writer, "{value:?}")
        })();
    }
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
            // No series expires: every label set is closed (route templates, methods with `other`,
            // statuses 100–999, upstreams, outcomes), and hot paths keep their handles
            // ([`Series`], `HttpMetrics`): a kept handle of an expired series would count into
            // nothing, for ever.
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The handles of one metric family by a small, closed key, each registered with the recorder
/// once: looking a series up in the recorder builds its key (name, labels) and hashes it on every
/// call, a few thousand instructions per proxied call (BENCHMARKS.md). Sound because no series
/// expires (see [`metrics`]).
pub struct Series<K, H> {
    handles: std::sync::RwLock<std::collections::HashMap<K, H, crate::cache::Hasher>>,
}

impl<K, H> Default for Series<K, H> {
    fn default() -> Self {
        Self {
            handles: std::sync::RwLock::new(std::collections::HashMap::with_hasher(
                crate::cache::Hasher::default(),
            )),
        }
    }
}

impl<K: Eq + std::hash::Hash + Copy, H> Series<K, H> {
    /// Runs `record` on the handle for `key`, registered by `register` the first time.
    pub fn with<R>(&self, key: K, register: impl FnOnce() -> H, record: impl FnOnce(&H) -> R) -> R {
        use std::sync::PoisonError;
        if let Some(handle) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return record(handle);
        }
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        record(handles.entry(key).or_insert_with(register))
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything a subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_sample() {
        let error = std::io::Error::other("disk \u{1b}[31mfull");
        let span = tracing::info_span!(
            "http.request",
            http.method = %"GET",
            http.route = %"/api/v1/partners/{partner_tid}/partner-center/{*path}",
            request.id = %"abc-123",
            http.status = tracing::field::Empty,
        );
        let _entered = span.enter();
        span.record("http.status", 502_u16);
        let r#type = "quoted \"value\"\nnext";
        tracing::info!(
            error.reference = %"ref-1",
            error.detail = "line\nbreak \u{1b}[2J",
            count = 3_u64,
            ok = true,
            r#type,
            debug = ?Some("x"),
            error = &error as &(dyn std::error::Error + 'static),
            "request \u{1b}[31mfailed"
        );
        tracing::warn!("plain message");
    }

    fn written<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .fmt_fields(fields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log_sample);
        let bytes = lines.0.lock().expect("lines").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn text_lines_are_byte_for_byte_what_the_default_field_format_writes() {
        let plain = written(PlainFields);
        let default = written(DefaultFields::new());
        assert_eq!(plain, default);
        // The sample exercised what matters: span fields, escaping, an error and its text.
        assert!(plain.contains("http.status=502"), "{plain}");
        assert!(
            plain.contains(r#"error.detail="line\nbreak \u{1b}[2J""#),
            "{plain}"
        );
        assert!(
            !plain.contains('\u{1b}'),
            "a terminal escape reached the log: {plain}"
        );
        assert_eq!(plain.lines().count(), 2, "{plain}");
    }
}
