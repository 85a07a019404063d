//! The only module that knows axum: routes, their auth policy (all visible in [`router`]),
//! middleware (request ids, spans, security headers, limits) and the server loop.

pub mod admin;
pub mod api;
pub mod assets;
pub mod client_ip;
pub mod consent;
mod edge;
pub mod errors;
pub mod health;
pub mod home;
pub mod metrics;
mod middleware;
pub mod sessions;

use std::future::Future;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use errors::PageError;

/// The whole HTTP surface. Each area's auth policy is stated here:
/// - `/healthz`, `/readyz`, `/static/…`, `/`: public, no state changes.
/// - `/consent/{token}…`, `/oauth/callback`: partner admins; the invitation token, then the
///   server-side session (state, nonce, PKCE verifier) created at `/consent/{token}/start`.
/// - `/admin…`: CPV staff; own session (8 h absolute, 30 min idle), CSRF token + origin check on
///   every POST, minimum role per route in the table of `admin::router` (`/admin/login` public).
/// - `/metrics`: Prometheus; public on this listener unless `SAMGATE_METRICS_LISTEN` moves it to
///   its own (see [`metrics_router`]).
/// - `/api/v1/…`: backend services; an API key (`Authorization: Bearer sgk_…`) checked by the
///   `ApiCaller` extractor of every handler, then partner scope and read-only rules.
pub fn router(state: AppState) -> Router {
    let config = &state.config;
    let hsts = config.public_url_is_https();
    let request_timeout = config.request_timeout;
    let max_body = config.max_body_bytes;
    let proxy_max_body = config.proxy.max_body_bytes;
    let authority_origin = config
        .microsoft
        .authority_url
        .origin()
        .ascii_serialization();

    let consent = consent::router().layer(sessions::layer(
        state.pool.clone(),
        hsts,
        time::Duration::minutes(30),
    ));
    let mut pages = Router::new();
    if config.metrics_listen.is_none() {
        pages = pages.merge(metrics::router());
    }
    let pages = pages
        .merge(health::router())
        .merge(home::router())
        .merge(assets::router())
        .merge(consent)
        .merge(admin::router(state.clone()))
        .fallback(show_not_found)
        // Innermost first: the timeout must sit inside the body limit (tower-http requirement).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(max_body));
    // The proxy streams large bodies for minutes: its own limit, its own timeouts (in `proxy`).
    let api = api::router()
        .layer(RequestBodyLimitLayer::new(proxy_max_body))
        // tower's `MapResponse`, not axum's `middleware::map_response`: the latter clones the
        // inner service and boxes a future on every request, for a check that needs neither.
        .layer(tower::util::MapResponseLayer::new(
            move |response: Response| json_body_limit(response, proxy_max_body),
        ));

    let mut headers = security_headers(&authority_origin);
    if hsts {
        headers.push((
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    pages
        .merge(api)
        .with_state(state)
        // Innermost first: a panic's answer still gets the edge's headers, metrics and log line.
        .layer(CatchPanicLayer::custom(show_panic))
        .layer(edge::EdgeLayer::new(headers))
}

/// `/metrics` alone, for a separate listener that is not exposed with the public pages.
pub fn metrics_router(state: AppState) -> Router {
    metrics::router().with_state(state)
}

/// Security headers on every response; a handler may set a stricter value first.
/// `form-action` includes the identity platform because browsers apply it to the redirect that
/// follows the "Sign in with Microsoft" form.
fn security_headers(authority_origin: &str) -> Vec<(HeaderName, HeaderValue)> {
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; form-action 'self' {authority_origin}; \
         frame-ancestors 'none'"
    );
    let csp = HeaderValue::from_str(&csp).unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'self'; form-action 'self'; frame-ancestors 'none'")
    });
    const HEADERS: [(&str, &str); 5] = [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        // Invitation links carry a secret token: never send it to another site as a Referer.
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ];
    std::iter::once((HeaderName::from_static("content-security-policy"), csp))
        .chain(HEADERS.iter().map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        }))
        .collect()
}

async fn show_not_found<B>(request: Request<B>) -> Response {
    if request.uri().path().starts_with("/api/") {
        errors::ApiError::new(errors::ApiErrorCode::NotFound, "no such API route").into_response()
    } else {
        PageError::not_found().into_response()
    }
}

/// The body limit layer's own 413 is plain text; on `/api` it is the documented JSON
/// `payload_too_large` (found while documenting every error code of the API).
fn json_body_limit(response: Response, limit: usize) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && !response.headers().contains_key(errors::ERROR_HEADER)
    {
        errors::ApiError::new(
            errors::ApiErrorCode::PayloadTooLarge,
            format!("request bodies are limited to {limit} bytes"),
        )
        .into_response()
    } else {
        response
    }
}

fn show_panic(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The payload may quote data; it is deliberately not logged or shown.
    PageError::internal("a handler panicked").into_response()
}

/// A client must send a request's headers within this time (slowloris), and an idle keep-alive
/// connection is closed after it.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Connections beyond this are closed at once rather than queued (many idle connections).
const MAX_CONNECTIONS: usize = 4096;
/// In-flight requests get this long to finish at shutdown.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
/// Unlike `axum::serve`, connections have a header-read timeout, HTTP/2 keep-alive pings and a cap
/// on their number, so slow or idle clients cannot pile up.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(10))
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request
                });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // The protocol sniffing of the auto builder waits for the first bytes without a
            // timer: a connection that stays silent is closed here instead.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                drop(slot);
                return;
            }
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            let _ = watcher.watch(connection.into_owned()).await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("shutdown: connections still open after the drain timeout");
        }
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Whether the request's `Origin` (or, without one, `Referer`) is samgate's own; true when the
/// browser sent neither (the token still has to match).
pub(crate) fn same_origin(headers: &axum::http::HeaderMap, own: &str) -> bool {
    if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
        return origin.as_bytes() == own.as_bytes();
    }
    match headers.get(axum::http::header::REFERER) {
        Some(referer) => referer
            .to_str()
            .ok()
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|r| r.origin().ascii_serialization() == own),
        None => true,
    }
}
