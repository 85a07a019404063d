//! The one service every request passes first: its request id (a caller's when plain, else a new
//! one), its span named by the route template, its metrics, one log line for a failure, and the
//! security headers on its answer. One service instead of a stack of eleven layers (request id set
//! and propagated, trace, two `from_fn`s, seven response headers), each of which boxed, cloned or
//! looked up on every request: the proxy answers thousands of calls a second through it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::response::Response;
use futures_util::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use super::metrics::HttpMetrics;
use super::middleware;

/// The request id header (kept from a plain caller value, otherwise generated; always answered).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the edge adds to every answer.
struct Edge {
    /// Security headers, set when the handler has not set its own (stricter) value.
    headers: Vec<(HeaderName, HeaderValue)>,
    metrics: HttpMetrics,
}

/// The edge as a tower layer.
#[derive(Clone)]
pub struct EdgeLayer {
    edge: Arc<Edge>,
}

impl EdgeLayer {
    /// An edge adding `headers` to every answer that lacks them.
    pub fn new(headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        Self {
            edge: Arc::new(Edge {
                headers,
                metrics: HttpMetrics::default(),
            }),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> EdgeService<S> {
        EdgeService {
            inner,
            edge: self.edge.clone(),
        }
    }
}

/// See [`EdgeLayer`].
#[derive(Clone)]
pub struct EdgeService<S> {
    inner: S,
    edge: Arc<Edge>,
}

impl<S> Service<Request<Body>> for EdgeService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let plain = request
            .headers()
            .get(&REQUEST_ID)
            .is_some_and(middleware::is_plain_request_id);
        if !plain {
            // A caller's id that could forge log lines is replaced, never echoed.
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            let value = HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"));
            request.headers_mut().insert(REQUEST_ID, value);
        }
        let request_id = request.headers().get(&REQUEST_ID).cloned();
        let span = middleware::make_request_span(&request);
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = super::metrics::method_label(request.method());
        // The service that was polled ready handles this request; a clone waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let edge = self.edge.clone();
        Box::pin(async move {
            let answered = inner.call(request).instrument(span.clone()).await;
            let mut response = match answered {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let latency = started.elapsed();
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            edge.metrics
                .record(route, method, response.status().as_u16(), latency);
            span.in_scope(|| {
                middleware::log_failure(&response);
                middleware::on_response(&response, latency, &span);
            });
            let headers = response.headers_mut();
            for (name, value) in &edge.headers {
                headers.entry(name.clone()).or_insert_with(|| value.clone());
            }
            if let Some(id) = request_id
                && !headers.contains_key(&REQUEST_ID)
            {
                headers.insert(REQUEST_ID, id);
            }
            Ok(response)
        })
    }
}
