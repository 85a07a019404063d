//! The two reference processes of the proxy benchmark:
//!
//! * [`upstream`] — a Partner Center stand-in that answers every request at once with a fixed,
//!   realistic one-customer page (what the emulator answers for `GET v1/customers?size=1`), so the
//!   proxy in front of it, not the upstream, decides the throughput. It refuses a request without
//!   a bearer token (401), as Partner Center does, so a proxy that forgot the token shows up.
//! * [`bare_proxy`] — a reverse proxy on the same stack samgate uses (hyper 1, hyper-util's pooled
//!   client, tokio) that does nothing else: no API key, no token broker, no records, no metrics; it
//!   sets one fixed bearer token. It is the limit of what samgate's stack can do per request.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The page the emulator answers for `GET v1/customers?size=1` (shape of Partner Center's
/// customer collection: one item, `links.next` with a continuation token, `attributes`).
const CUSTOMERS_PAGE: &str = r#"{"totalCount":1,"items":[{"id":"7f5e1c4b-0000-4c9a-9d3e-0000000000a1","companyProfile":{"tenantId":"7f5e1c4b-0000-4c9a-9d3e-0000000000a1","domain":"fabrikam.onmicrosoft.com","companyName":"Fabrikam","attributes":{"objectType":"CustomerCompanyProfile"}},"relationshipToPartner":"reseller","attributes":{"objectType":"Customer"}}],"links":{"next":{"uri":"/v1/customers?size=1","method":"GET","headers":[{"key":"MS-ContinuationToken","value":"bench-continuation-1"}]}},"attributes":{"objectType":"Collection"}}"#;

/// Serves `router` on `addr` (HTTP/1.1, and HTTP/2 with prior knowledge) until the process ends.
async fn serve<F, Fut>(addr: SocketAddr, handler: F) -> anyhow::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn fixed(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The fixed-answer upstream.
pub async fn upstream(port: u16) -> anyhow::Result<()> {
    serve(
        SocketAddr::from(([127, 0, 0, 1], port)),
        |request: Request<Incoming>| async move {
            let bearer = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
            if !bearer {
                return fixed(
                    StatusCode::UNAUTHORIZED,
                    "application/json",
                    r#"{"code":900401,"description":"Authorization header is missing"}"#,
                );
            }
            let mut response = fixed(
                StatusCode::OK,
                "application/json; charset=utf-8",
                CUSTOMERS_PAGE,
            );
            for name in ["ms-requestid", "ms-correlationid"] {
                if let Some(value) = request.headers().get(name) {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        },
    )
    .await
}

/// The bare reverse proxy: `port` → `upstream` (http://host:port), with `token` as the bearer.
pub async fn bare_proxy(port: u16, upstream: String, token: String) -> anyhow::Result<()> {
    let authority: hyper::http::uri::Authority = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
    let host = HeaderValue::from_str(authority.as_str())?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector);
    serve(
        SocketAddr::from(([127, 0, 0, 1], port)),
        move |request: Request<Incoming>| {
            let (client, authority, bearer, host) = (
                client.clone(),
                authority.clone(),
                bearer.clone(),
                host.clone(),
            );
            async move {
                let (mut parts, body) = request.into_parts();
                let mut uri = parts.uri.into_parts();
                uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
                uri.authority = Some(authority);
                let Ok(uri) = hyper::Uri::from_parts(uri) else {
                    return fixed(StatusCode::BAD_REQUEST, "text/plain", "bad uri");
                };
                parts.uri = uri;
                parts.headers.insert(AUTHORIZATION, bearer);
                parts.headers.insert(HOST, host);
                match client.request(Request::from_parts(parts, body)).await {
                    Ok(response) => {
                        let (parts, body) = response.into_parts();
                        match body.collect().await {
                            Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
                            Err(_) => {
                                fixed(StatusCode::BAD_GATEWAY, "text/plain", "upstream broke off")
                            }
                        }
                    }
                    Err(_) => fixed(
                        StatusCode::BAD_GATEWAY,
                        "text/plain",
                        "upstream unreachable",
                    ),
                }
            }
        },
    )
    .await
}
