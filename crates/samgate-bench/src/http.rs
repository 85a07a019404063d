//! The two reference processes of the proxy benchmark:
//!
//! * [`upstream`] — a Partner Center stand-in that answers every request at once with a fixed,
//!   realistic one-customer page (what the emulator answers for `GET v1/customers?size=1`), so the
//!   proxy in front of it, not the upstream, decides the throughput. It refuses a request without
//!   a bearer token (401), as Partner Center does, so a proxy that forgot the token shows up.
//!   With a CA path it serves HTTPS instead, offering `h2` then `http/1.1` by ALPN as Microsoft's
//!   hosts do, with a throwaway CA (written to that path for the proxy to trust) and a leaf for
//!   `127.0.0.1`/`localhost`. It counts requests by HTTP version and prints the counts to stderr
//!   on SIGTERM/SIGINT, so a run can show which protocol the proxy spoke.
//! * [`bare_proxy`] — a reverse proxy on the same stack samgate uses (hyper 1, hyper-util's pooled
//!   client, tokio) that does nothing else: no API key, no token broker, no records, no metrics; it
//!   sets one fixed bearer token. It is the limit of what samgate's stack can do per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The page the emulator answers for `GET v1/customers?size=1` (shape of Partner Center's
/// customer collection: one item, `links.next` with a continuation token, `attributes`).
const CUSTOMERS_PAGE: &str = r#"{"totalCount":1,"items":[{"id":"7f5e1c4b-0000-4c9a-9d3e-0000000000a1","companyProfile":{"tenantId":"7f5e1c4b-0000-4c9a-9d3e-0000000000a1","domain":"fabrikam.onmicrosoft.com","companyName":"Fabrikam","attributes":{"objectType":"CustomerCompanyProfile"}},"relationshipToPartner":"reseller","attributes":{"objectType":"Customer"}}],"links":{"next":{"uri":"/v1/customers?size=1","method":"GET","headers":[{"key":"MS-ContinuationToken","value":"bench-continuation-1"}]}},"attributes":{"objectType":"Collection"}}"#;

/// Serves `handler` on `addr` until the process ends: HTTP/1.1 and HTTP/2 (prior knowledge) in
/// plain text, or, with `tls`, HTTPS where the client picks the protocol by ALPN.
async fn serve<F, Fut>(addr: SocketAddr, tls: Option<TlsAcceptor>, handler: F) -> anyhow::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("listening on {scheme}://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, handler).await,
                // The handshake runs in the connection's task, capped so a stalled client only
                // costs its own task.
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    {
                        serve_connection(stream, handler).await;
                    }
                }
            }
        });
    }
}

/// One connection, HTTP/1.1 or HTTP/2 (hyper-util's auto builder reads the preface).
async fn serve_connection<I, F, Fut>(stream: I, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(request).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A throwaway CA and a leaf for `localhost` and `127.0.0.1` signed by it (a bare self-signed
/// leaf will not do as a trust anchor for every client); returns the CA's PEM and an acceptor
/// offering `h2` then `http/1.1`.
fn throwaway_tls() -> anyhow::Result<(String, TlsAcceptor)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "samgate-bench throwaway CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&key, &ca)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone(), ca.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((ca.pem(), TlsAcceptor::from(Arc::new(config))))
}

/// Requests the upstream answered, by HTTP version: HTTP/1.x, HTTP/2.
static REQUESTS_BY_VERSION: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn count_version(version: hyper::Version) {
    let slot = usize::from(version == hyper::Version::HTTP_2);
    REQUESTS_BY_VERSION[slot].fetch_add(1, Ordering::Relaxed);
}

/// Prints the per-version counts to stderr on SIGTERM or SIGINT, then ends the process.
async fn report_versions_on_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!(
        "requests by version: http1={} http2={}",
        REQUESTS_BY_VERSION[0].load(Ordering::Relaxed),
        REQUESTS_BY_VERSION[1].load(Ordering::Relaxed)
    );
    std::process::exit(0);
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

/// The fixed-answer upstream; with `tls_ca_out`, over HTTPS (h2 or http/1.1 by ALPN) with a
/// throwaway CA whose PEM is written there.
pub async fn upstream(port: u16, tls_ca_out: Option<&Path>) -> anyhow::Result<()> {
    let tls = match tls_ca_out {
        None => None,
        Some(path) => {
            let (ca_pem, acceptor) = throwaway_tls()?;
            std::fs::write(path, ca_pem)?;
            Some(acceptor)
        }
    };
    tokio::spawn(async {
        if let Err(err) = report_versions_on_signal().await {
            eprintln!("no signal handler: {err}");
        }
    });
    serve(
        SocketAddr::from(([127, 0, 0, 1], port)),
        tls,
        |request: Request<Incoming>| async move {
            count_version(request.version());
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
        None,
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
