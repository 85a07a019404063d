//! The proxy's HTTP client: hyper's pooled client over rustls, HTTP/2 where the upstream offers it
//! by ALPN (Microsoft's hosts do) and HTTP/1.1 keep-alive otherwise. The proxy path uses it rather
//! than reqwest because it takes an `http::Uri` and an `http::Request` as they are (no URL parse,
//! no header map rebuilt per call): that was 16 % of samgate's CPU per proxied call in the
//! profile (BENCHMARKS.md). samgate's own calls (tokens, directory syncs) stay on reqwest.
//!
//! Like the rest of samgate's outbound calls it follows no redirects (hyper never does), sends
//! no `Accept-Encoding` (answers come back uncompressed, see `proxy::links`), and trusts the
//! public web PKI plus `SAMGATE_EXTRA_CA_FILE`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::{Instant, Sleep};

use super::CallPermits;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A pooled HTTP/1.1 + HTTP/2 client for the proxy's upstream calls.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Client<Connector, Body>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient").finish_non_exhaustive()
    }
}

/// Why the upstream call failed before its response headers.
#[derive(Debug)]
pub struct SendError {
    kind: SendErrorKind,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendErrorKind {
    Connect,
    FirstByte,
    Other,
}

impl SendError {
    /// No connection could be made (refused, unreachable, TLS handshake, connect timeout): safe
    /// to retry, the upstream saw nothing.
    pub fn is_connect(&self) -> bool {
        self.kind == SendErrorKind::Connect
    }

    /// The answer's head did not come before the first-byte deadline.
    pub fn is_first_byte(&self) -> bool {
        self.kind == SendErrorKind::FirstByte
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// How long a connection may take to open (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this (Microsoft's front doors close theirs at about
/// four minutes; closing first avoids sending on a connection being closed).
const POOL_IDLE: Duration = Duration::from_secs(90);

impl UpstreamClient {
    /// A client trusting the web PKI's roots and `extra_ca_pem` (PEM certificates, if any).
    pub fn new(extra_ca_pem: Option<&[u8]>) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca_pem {
            use rustls::pki_types::pem::PemObject;
            let mut added = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|_| anyhow::anyhow!("not a PEM certificate"))?;
                roots
                    .add(cert)
                    .map_err(|_| anyhow::anyhow!("not a usable CA certificate"))?;
                added += 1;
            }
            anyhow::ensure!(added > 0, "no PEM certificate in it");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_adaptive_window(true)
            .build(connector);
        Ok(Self { inner })
    }

    /// Sends `request`: no answer's head by `first_byte` is [`SendError::is_first_byte`], and the
    /// answer's body fails with a timeout once `deadline` passes. One timer serves both deadlines
    /// (it is moved on to `deadline` when the head arrives, then lives in the body).
    pub async fn send(
        &self,
        request: axum::http::Request<Body>,
        first_byte: Instant,
        deadline: Instant,
    ) -> Result<axum::http::Response<UpstreamBody>, SendError> {
        let mut timer = Box::pin(tokio::time::sleep_until(first_byte.min(deadline)));
        let sent = tokio::select! {
            biased;
            sent = self.inner.request(request) => sent,
            () = timer.as_mut() => {
                return Err(SendError {
                    kind: SendErrorKind::FirstByte,
                    detail: "no answer before the first-byte deadline".to_owned(),
                });
            }
        };
        let response = sent.map_err(|err| {
            let mut detail = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                detail.push_str(": ");
                detail.push_str(&cause.to_string());
                source = cause.source();
            }
            SendError {
                kind: if err.is_connect() {
                    SendErrorKind::Connect
                } else {
                    SendErrorKind::Other
                },
                detail,
            }
        })?;
        timer.as_mut().reset(deadline);
        Ok(response.map(|inner| UpstreamBody {
            inner,
            deadline: timer,
            permits: None,
        }))
    }
}

/// Microsoft's response body, cut off with an error when the call's total deadline passes, and
/// holding the call's concurrency permits until it has been read to the end or dropped.
pub struct UpstreamBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    permits: Option<CallPermits>,
}

impl UpstreamBody {
    /// Keeps `permits` until the body is finished.
    pub fn hold(&mut self, permits: CallPermits) {
        self.permits = Some(permits);
    }
}

/// The upstream broke off, or the total deadline passed, while its body was being read.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamBodyError {
    /// The call's total deadline passed.
    #[error("the upstream's answer did not finish before the deadline")]
    Deadline,
    /// The connection failed.
    #[error("the upstream's answer broke off: {0}")]
    Broken(#[from] hyper::Error),
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() {
                this.permits = None;
            }
            return Poll::Ready(frame.map(|f| f.map_err(UpstreamBodyError::Broken)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.permits = None;
                Poll::Ready(Some(Err(UpstreamBodyError::Deadline)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
