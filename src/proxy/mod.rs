//! Forwarding rules: which upstream a proxied call goes to (fixed by configuration), which token it
//! carries (from the broker), retries (`Retry-After` within the caller's budget, 5xx for
//! idempotent calls, one retry after `401 invalid_token`), throttling state per
//! (partner, customer, upstream), and the record of each call.

mod client;
pub mod headers;
pub mod links;
pub mod path;
mod records;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, header};
use bytes::Bytes;
use moka::sync::Cache;
use tokio::sync::Semaphore;
use uuid::Uuid;

pub use client::{UpstreamBody, UpstreamBodyError, UpstreamClient};
pub use records::{CallRecord, CallRecordQueue, CallRecorder};

use crate::broker::{Broker, BrokerError, Resource, TokenKey, jittered_backoff};
use crate::partners::PartnerInfo;

/// The Microsoft service a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// Partner Center REST, with a partner-tenant token.
    PartnerCenter,
    /// Graph, with a token for the partner's tenant or a customer's.
    Graph,
}

impl Upstream {
    /// Stable name (records, headers, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PartnerCenter => "partner-center",
            Self::Graph => "graph",
        }
    }

    /// The first path segments this upstream's API lives under.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Self::PartnerCenter => &["v1"],
            Self::Graph => &["v1.0", "beta"],
        }
    }

    fn resource(self) -> Resource {
        match self {
            Self::PartnerCenter => Resource::PartnerCenter,
            Self::Graph => Resource::Graph,
        }
    }
}

/// Tunables of the proxy (from configuration).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Partner Center base URL.
    pub partner_center_url: url::Url,
    /// Graph base URL.
    pub graph_url: url::Url,
    /// Largest request body forwarded.
    pub max_body_bytes: usize,
    /// Request bodies up to this size are buffered so the call can be retried.
    pub replayable_body_bytes: usize,
    /// Deadline for the upstream's response headers.
    pub first_byte_timeout: Duration,
    /// Deadline for the whole upstream call, body included.
    pub total_timeout: Duration,
    /// How long samgate may wait for a `Retry-After` when the caller states no deadline.
    pub default_budget: Duration,
    /// Concurrent calls per API client.
    pub client_concurrency: usize,
    /// Concurrent calls per partner.
    pub partner_concurrency: usize,
}

/// A request body: empty, buffered (replayable), or streamed through once.
pub enum ProxyBody {
    /// No body.
    Empty,
    /// Small enough to keep, so the call can be retried.
    Buffered(Bytes),
    /// Streamed to the upstream as it arrives; the call cannot be retried.
    Streaming(Body),
}

impl ProxyBody {
    fn replayable(&self) -> Option<Body> {
        match self {
            Self::Empty => Some(Body::empty()),
            Self::Buffered(bytes) => Some(Body::from(bytes.clone())),
            Self::Streaming(_) => None,
        }
    }
}

/// One call for the engine, as the API layer hands it over: the caller's key verified and scoped
/// to the partner, the partner found and able to call, the customer (if any) past the customer
/// gate. The engine does the rest: path rules, concurrency slots, the body, the token, retries
/// and throttling.
pub struct Call {
    /// The API client calling.
    pub client_id: Uuid,
    /// The partner it acts for.
    pub partner: Arc<PartnerInfo>,
    /// The customer tenant, for customer Graph calls.
    pub customer: Option<Uuid>,
    /// Where the call goes.
    pub upstream: Upstream,
    /// The caller's request, as it came.
    pub request: axum::http::Request<Body>,
    /// Where, in the request's path, the upstream path begins (after the route's prefix).
    pub rest_at: usize,
    /// How long the caller is willing to wait in all.
    pub budget: Duration,
}

/// Microsoft's answer, and the concurrency slots the call holds until its body is finished.
pub struct Proxied {
    /// The answer; its body fails once the call's total deadline passes.
    pub response: Response<UpstreamBody>,
    /// The call's slots: keep them as long as the body streams.
    pub permits: CallPermits,
}

/// One call to forward, its path checked and its body read.
struct ProxyRequest {
    partner: Arc<PartnerInfo>,
    customer: Option<Uuid>,
    upstream: Upstream,
    method: Method,
    /// The upstream URI: the configured base, the normalised path, the raw query.
    uri: axum::http::Uri,
    /// Caller headers (filtered here).
    headers: HeaderMap,
    body: ProxyBody,
    /// How long the caller is willing to wait in all.
    budget: Duration,
}

/// Why a call was not forwarded (or failed before a response).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No token: the broker's reason.
    #[error(transparent)]
    Token(#[from] BrokerError),
    /// Throttled by Microsoft, and waiting does not fit the budget.
    #[error("upstream throttled")]
    Throttled {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// Too many concurrent calls for this client or partner.
    #[error("too many concurrent calls")]
    Busy,
    /// Microsoft did not answer in time or could not be reached.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The path would escape the upstream prefix.
    #[error(transparent)]
    Path(#[from] path::PathError),
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// The proxy of one samgate process.
#[derive(Clone)]
pub struct Proxy {
    http: UpstreamClient,
    broker: Broker,
    settings: ProxySettings,
    partner_center_base: path::Base,
    graph_base: path::Base,
    throttled_until: Cache<(Uuid, Option<Uuid>, Upstream), Instant, crate::cache::Hasher>,
    client_slots: Cache<Uuid, Arc<Semaphore>, crate::cache::Hasher>,
    partner_slots: Cache<Uuid, Arc<Semaphore>, crate::cache::Hasher>,
    /// One client's share of one partner's slots, so a single client cannot starve the others.
    share_slots: Cache<(Uuid, Uuid), Arc<Semaphore>, crate::cache::Hasher>,
    recorder: CallRecorder,
    /// `samgate_proxy_upstream_duration_seconds` and `samgate_proxy_upstream_responses_total`.
    upstream_series: Arc<UpstreamSeries>,
}

type UpstreamSeries =
    crate::telemetry::Series<(Upstream, u16), (metrics::Histogram, metrics::Counter)>;

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The permits a call holds while it runs (its body included).
pub struct CallPermits {
    _client: tokio::sync::OwnedSemaphorePermit,
    _share: tokio::sync::OwnedSemaphorePermit,
    _partner: tokio::sync::OwnedSemaphorePermit,
}

impl Proxy {
    /// A proxy using `http` and `broker`; fails when a base URL has no host.
    pub fn new(
        http: UpstreamClient,
        broker: Broker,
        settings: ProxySettings,
        recorder: CallRecorder,
    ) -> anyhow::Result<Self> {
        let idle = Duration::from_secs(600);
        let base = |url: &url::Url, what: &str| {
            path::Base::new(url)
                .ok_or_else(|| anyhow::anyhow!("{what} is not an http(s) URL with a host"))
        };
        Ok(Self {
            http,
            broker,
            partner_center_base: base(&settings.partner_center_url, "SAMGATE_PARTNER_CENTER_URL")?,
            graph_base: base(&settings.graph_url, "SAMGATE_GRAPH_URL")?,
            throttled_until: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build_with_hasher(crate::cache::Hasher::default()),
            client_slots: Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(idle)
                .build_with_hasher(crate::cache::Hasher::default()),
            partner_slots: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(idle)
                .build_with_hasher(crate::cache::Hasher::default()),
            share_slots: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(idle)
                .build_with_hasher(crate::cache::Hasher::default()),
            settings,
            recorder,
            upstream_series: Arc::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    /// The call recorder.
    pub fn recorder(&self) -> &CallRecorder {
        &self.recorder
    }

    /// The most of one partner's slots one client may hold: half, so a second client always
    /// finds room however busy the first is.
    pub fn client_share(&self) -> usize {
        self.settings.partner_concurrency.div_ceil(2).max(1)
    }

    /// Takes a concurrency slot for the client, for its share of the partner, and for the
    /// partner, or fails at once.
    pub fn admit(&self, client: Uuid, partner: Uuid) -> Result<CallPermits, ProxyError> {
        let per_client = self.settings.client_concurrency;
        let per_partner = self.settings.partner_concurrency;
        let share = self.client_share();
        let share_slots = self
            .share_slots
            .get_with((client, partner), || Arc::new(Semaphore::new(share)));
        let client_slots = self
            .client_slots
            .get_with(client, || Arc::new(Semaphore::new(per_client)));
        let partner_slots = self
            .partner_slots
            .get_with(partner, || Arc::new(Semaphore::new(per_partner)));
        let client = client_slots
            .try_acquire_owned()
            .map_err(|_| ProxyError::Busy)?;
        let share = share_slots
            .try_acquire_owned()
            .map_err(|_| ProxyError::Busy)?;
        let partner = partner_slots
            .try_acquire_owned()
            .map_err(|_| ProxyError::Busy)?;
        Ok(CallPermits {
            _client: client,
            _share: share,
            _partner: partner,
        })
    }

    /// Proxies `call`: the path checked (dot segments, API version), slots taken for the client
    /// and the partner, the body read (small ones kept for retries, large ones streamed), then
    /// forwarded with the partner's token. A successful app-consent grant through Partner Center
    /// makes the broker forget what the customer's tenant refused before.
    pub async fn handle(&self, call: Call) -> Result<Proxied, ProxyError> {
        let Call {
            client_id,
            partner,
            customer,
            upstream,
            request,
            rest_at,
            budget,
        } = call;
        let raw_rest = request.uri().path().get(rest_at..).unwrap_or("");
        let rest = path::normalize(raw_rest)?;
        path::check_api_version(&rest, upstream.api_versions())?;
        let permits = self.admit(client_id, partner.id)?;
        let uri = path::join(self.base(upstream), &rest, request.uri().query())?;
        let (parts, body) = request.into_parts();
        let consent_for = consented_customer(upstream, &parts.method, &rest);
        let body = self.body(&parts.headers, body).await?;
        let started = Instant::now();
        let response = self
            .forward(ProxyRequest {
                partner: partner.clone(),
                customer,
                upstream,
                method: parts.method,
                uri,
                headers: parts.headers,
                body,
                budget,
            })
            .await?;
        let status = response.status().as_u16();
        if let Some(customer) = consent_for
            && (response.status().is_success() || status == 409)
        {
            // The backend granted the app consent itself: what samgate remembered is outdated.
            self.broker
                .forget_refusals(partner.tenant_id, customer)
                .await;
        }
        self.upstream_series.with(
            (upstream, status),
            || {
                let label = crate::telemetry::status_label(status);
                (
                    metrics::histogram!("samgate_proxy_upstream_duration_seconds", "upstream" => upstream.as_str(), "status" => label),
                    metrics::counter!("samgate_proxy_upstream_responses_total", "upstream" => upstream.as_str(), "status" => label),
                )
            },
            |(duration, responses)| {
                duration.record(started.elapsed().as_secs_f64());
                responses.increment(1);
            },
        );
        Ok(Proxied { response, permits })
    }

    /// The request body for the upstream: empty, buffered (small enough to send again on a retry)
    /// or streamed (large or chunked, never held whole); `TooLarge` past `max_body_bytes`.
    async fn body(&self, headers: &HeaderMap, body: Body) -> Result<ProxyBody, ProxyError> {
        use http_body_util::BodyExt;
        let settings = &self.settings;
        let too_large = ProxyError::TooLarge {
            limit: settings.max_body_bytes,
        };
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if length.is_some_and(|l| l > settings.max_body_bytes) {
            return Err(too_large);
        }
        match length {
            Some(0) => Ok(ProxyBody::Empty),
            Some(l) if l <= settings.replayable_body_bytes => {
                let limited = http_body_util::Limited::new(body, settings.replayable_body_bytes);
                let bytes = limited.collect().await.map_err(|_| too_large)?.to_bytes();
                Ok(if bytes.is_empty() {
                    ProxyBody::Empty
                } else {
                    ProxyBody::Buffered(bytes)
                })
            }
            _ if headers.get(header::TRANSFER_ENCODING).is_none() && length.is_none() => {
                Ok(ProxyBody::Empty)
            }
            _ => {
                let limited = http_body_util::Limited::new(body, settings.max_body_bytes);
                Ok(ProxyBody::Streaming(Body::new(limited)))
            }
        }
    }

    fn base(&self, upstream: Upstream) -> &path::Base {
        match upstream {
            Upstream::PartnerCenter => &self.partner_center_base,
            Upstream::Graph => &self.graph_base,
        }
    }

    /// Forwards `request` and returns Microsoft's response (any status) for streaming back.
    async fn forward(&self, request: ProxyRequest) -> Result<Response<UpstreamBody>, ProxyError> {
        let started = Instant::now();
        let uri = request.uri;
        let throttle_key = (
            request.partner.tenant_id,
            request.customer,
            request.upstream,
        );
        if let Some(until) = self.throttled_until.get(&throttle_key) {
            let wait = until.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                if wait > request.budget {
                    return Err(ProxyError::Throttled {
                        retry_after: wait.as_secs().max(1),
                    });
                }
                tokio::time::sleep(wait).await;
            }
        }
        let key = TokenKey {
            partner_id: request.partner.id,
            partner_tenant: request.partner.tenant_id,
            authority_tenant: request.customer.unwrap_or(request.partner.tenant_id),
            resource: request.upstream.resource(),
        };
        let filtered = headers::request_headers(&request.headers);
        // The same MS-RequestId on every attempt lets Partner Center de-duplicate retries.
        let ids: Vec<(HeaderName, HeaderValue)> =
            [headers::MS_REQUEST_ID, headers::MS_CORRELATION_ID]
                .into_iter()
                .filter(|name| !filtered.contains_key(name))
                .filter_map(|name| {
                    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                    let id = Uuid::new_v4().hyphenated().encode_lower(&mut text);
                    HeaderValue::from_str(id).ok().map(|value| (name, value))
                })
                .collect();
        let complete = |mut headers: HeaderMap| {
            headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
            for (name, value) in &ids {
                headers.insert(name.clone(), value.clone());
            }
            headers
        };
        // A retry builds its headers again rather than every attempt copying them.
        let mut first_headers = Some(complete(filtered));
        let idempotent = matches!(
            request.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        ) || request.headers.contains_key(headers::MS_REQUEST_ID);
        let (mut streaming, kept) = match request.body {
            ProxyBody::Streaming(body) => (Some(body), ProxyBody::Empty),
            other => (None, other),
        };
        let replayable = streaming.is_none();
        let mut refreshed_after_401 = false;
        let mut server_error_retries = 0;
        let mut throttle_retries = 0;
        loop {
            let token = self.broker.access_token(key).await?;
            let body = match streaming.take() {
                Some(body) => body,
                None => kept.replayable().unwrap_or_else(Body::empty),
            };
            let mut call = axum::http::Request::new(body);
            *call.method_mut() = request.method.clone();
            *call.uri_mut() = uri.clone();
            *call.headers_mut() = first_headers
                .take()
                .unwrap_or_else(|| complete(headers::request_headers(&request.headers)));
            call.headers_mut()
                .insert(header::AUTHORIZATION, token.bearer());
            let now = tokio::time::Instant::now();
            let deadline = now + self.settings.total_timeout;
            let first_byte = now + self.settings.first_byte_timeout;
            let response = match self.http.send(call, first_byte, deadline).await {
                Err(err) if err.is_first_byte() => {
                    return Err(ProxyError::Unavailable(err.to_string()));
                }
                Err(err) => {
                    let retry =
                        replayable && idempotent && server_error_retries < 2 && err.is_connect();
                    if retry {
                        server_error_retries += 1;
                        tokio::time::sleep(jittered_backoff(server_error_retries)).await;
                        continue;
                    }
                    return Err(ProxyError::Unavailable(err.to_string()));
                }
                Ok(response) => response,
            };
            let status = response.status().as_u16();
            let remaining = request.budget.saturating_sub(started.elapsed());
            // Graph's 401 for a revoked or expired token carries no `error="invalid_token"`
            // (its body says InvalidAuthenticationToken), so any Graph 401 counts.
            if status == 401
                && !refreshed_after_401
                && replayable
                && (request.upstream == Upstream::Graph || invalid_token(response.headers()))
            {
                // Microsoft refused a token we believed valid (clock skew, revocation): drop it
                // everywhere and try once with a new one.
                Box::pin(self.broker.forget(key)).await;
                refreshed_after_401 = true;
                continue;
            }
            if status == 429 || status == 503 {
                // `Retry-After: 0` is read as one second, and a call waits out at most
                // THROTTLE_RETRIES throttles: Microsoft is never asked again in a tight loop.
                let retry_after = retry_after_seconds(response.headers())
                    .unwrap_or(if status == 429 { 30 } else { 5 })
                    .max(1);
                let wait = Duration::from_secs(retry_after);
                self.throttled_until
                    .insert(throttle_key, Instant::now() + wait);
                if replayable
                    && idempotent
                    && wait <= remaining
                    && throttle_retries < THROTTLE_RETRIES
                {
                    throttle_retries += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                if status == 429 {
                    return Err(ProxyError::Throttled {
                        retry_after: retry_after.max(1),
                    });
                }
                return Ok(response);
            }
            if status >= 500
                && replayable
                && matches!(request.method, Method::GET | Method::HEAD)
                && server_error_retries < 2
            {
                server_error_retries += 1;
                tokio::time::sleep(jittered_backoff(server_error_retries)).await;
                continue;
            }
            return Ok(response);
        }
    }
}

/// Throttled answers (429/503 with a wait that fits the caller's budget) one call waits out.
const THROTTLE_RETRIES: u32 = 3;

/// The customer a Partner Center `POST v1/customers/{id}/applicationconsents` grants consent in.
fn consented_customer(upstream: Upstream, method: &Method, path: &str) -> Option<Uuid> {
    if upstream != Upstream::PartnerCenter || method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("v1/customers/")?;
    let (customer, tail) = rest.split_once('/')?;
    (tail.trim_end_matches('/') == "applicationconsents")
        .then(|| Uuid::parse_str(customer).ok())
        .flatten()
}

/// samgate's `User-Agent` towards Microsoft (as on its own calls).
const USER_AGENT: &str = concat!("samgate/", env!("CARGO_PKG_VERSION"));

fn invalid_token(headers: &HeaderMap) -> bool {
    headers
        .get_all("www-authenticate")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("invalid_token")))
}

fn retry_after_seconds(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.min(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(partner_concurrency: usize) -> Proxy {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://unused/unused")
            .expect("lazy pool");
        let ring =
            crate::vault::KeyRing::parse(&format!("1:{}", crate::vault::generate_key()), None)
                .expect("ring");
        let vault = crate::vault::Vault::new(ring);
        let http = reqwest::Client::new();
        let url = url::Url::parse("http://127.0.0.1:9").expect("url");
        let identity = Arc::new(crate::identity::IdentityClient::new(
            http.clone(),
            url.clone(),
            Uuid::nil(),
            crate::identity::ClientCredential::Secret(secrecy::SecretString::from("x")),
        ));
        let broker = Broker::new(
            pool.clone(),
            vault,
            identity,
            Arc::new(crate::clock::SystemClock),
            crate::partners::PartnerDirectory::new(pool.clone()),
            crate::broker::BrokerSettings {
                partner_center_resource: "https://api.partnercenter.microsoft.com",
                graph_resource: "https://graph.microsoft.com",
                memory: crate::broker::RefusalMemory::default(),
            },
        );
        let (recorder, _queue) = CallRecorder::new(10);
        Proxy::new(
            UpstreamClient::new(None).expect("client"),
            broker,
            ProxySettings {
                partner_center_url: url.clone(),
                graph_url: url,
                max_body_bytes: 1,
                replayable_body_bytes: 1,
                first_byte_timeout: Duration::from_secs(1),
                total_timeout: Duration::from_secs(1),
                default_budget: Duration::from_secs(1),
                client_concurrency: 256,
                partner_concurrency,
            },
            recorder,
        )
        .expect("proxy")
    }

    #[tokio::test]
    async fn one_client_cannot_take_every_slot_of_a_partner() {
        let proxy = proxy(8);
        let (greedy, polite, partner) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut held = Vec::new();
        while let Ok(permits) = proxy.admit(greedy, partner) {
            held.push(permits);
        }
        assert_eq!(held.len(), 4, "the greedy client holds its share only");
        let mut polite_held = Vec::new();
        for _ in 0..4 {
            polite_held.push(
                proxy
                    .admit(polite, partner)
                    .expect("room for another client"),
            );
        }
        assert!(
            proxy.admit(Uuid::new_v4(), partner).is_err(),
            "the partner is full"
        );
        drop(held);
        assert!(proxy.admit(greedy, partner).is_ok());
    }
}
