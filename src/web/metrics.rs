//! `/metrics` in Prometheus text format, and the middleware that counts HTTP requests by route
//! template. Gauges that describe state (partners by health, pool use, call-record queue) are read
//! at scrape time, so nothing on the request path queries for them.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Histogram};

use crate::app::AppState;
use crate::cache::Hasher;
use crate::telemetry;

/// `GET /metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(show_metrics))
}

/// The HTTP request metrics (`samgate_http_requests_total`, `samgate_http_request_duration_seconds`)
/// by route template, method and status. Each series' handle is registered once and kept: looking a
/// series up in the recorder builds its key (labels, strings) every time, on every request.
/// The sets are bounded: route templates, seven methods and `other`, statuses 100 to 999.
#[derive(Default)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<String, RouteSeries, Hasher>>,
}

#[derive(Default)]
struct RouteSeries {
    requests: HashMap<(&'static str, u16), Counter, Hasher>,
    durations: HashMap<&'static str, Histogram, Hasher>,
}

impl HttpMetrics {
    /// Counts one answered request and its latency.
    pub fn record(&self, route: &str, method: &'static str, status: u16, latency: Duration) {
        let seconds = latency.as_secs_f64();
        {
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(series) = routes.get(route)
                && let (Some(requests), Some(duration)) = (
                    series.requests.get(&(method, status)),
                    series.durations.get(method),
                )
            {
                requests.increment(1);
                duration.record(seconds);
                return;
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        let series = routes.entry(route.to_owned()).or_default();
        let status_text = status_label(status);
        series
            .requests
            .entry((method, status))
            .or_insert_with(|| metrics::counter!("samgate_http_requests_total", "route" => route.to_owned(), "method" => method, "status" => status_text))
            .increment(1);
        series
            .durations
            .entry(method)
            .or_insert_with(|| metrics::histogram!("samgate_http_request_duration_seconds", "route" => route.to_owned(), "method" => method))
            .record(seconds);
    }
}

pub use crate::telemetry::status_label;

/// The method as a metric label from a closed set: extension methods (any token a client sends)
/// become `other`, so they cannot create series without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn show_metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = telemetry::metrics() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response();
    };
    // State gauges, refreshed at scrape time.
    if let Ok(counts) = crate::db::partners::count_by_status(&state.pool).await {
        for (status, count) in counts {
            metrics::gauge!("samgate_partners", "status" => status).set(count as f64);
        }
    }
    let idle = state.pool.num_idle() as f64;
    let size = f64::from(state.pool.size());
    metrics::gauge!("samgate_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("samgate_db_pool_connections", "state" => "in_use").set(size - idle);
    let recorder = state.proxy.recorder();
    metrics::gauge!("samgate_call_record_queue_depth").set(recorder.queue_depth() as f64);
    metrics::gauge!("samgate_call_records_dropped").set(recorder.dropped() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for raw in ["PROPFIND", "XYZZY", "BREW"] {
            let method = Method::from_bytes(raw.as_bytes()).expect("method");
            assert_eq!(method_label(&method), "other", "{raw}");
        }
    }
}
