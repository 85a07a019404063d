//! Webhooks: Standard Webhooks signatures checked by an independent implementation, rotation
//! overlap, at-least-once delivery to a receiver that was down, replay, the SSRF guard, and the
//! events housekeeping emits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use samgate::domain::Actor;
use sha2::Sha256;

use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::lifecycle::{advance, quiet_app};

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1 that records what it gets.
pub(crate) struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        Self::on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn on(address: SocketAddr) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    store.lock().expect("lock").push(Received {
                        headers,
                        body: body.to_vec(),
                    });
                    (axum::http::StatusCode::NO_CONTENT, "")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
        let address = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            address,
            received,
            _shutdown: tx,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

pub(crate) fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{name} header"))
}

/// The Standard Webhooks verification, written from the specification rather than samgate's code:
/// HMAC-SHA256 keyed with the base64-decoded part after `whsec_`, over `id.timestamp.body`,
/// compared with each `v1,` entry of the space-separated header.
pub(crate) fn verifies(secret: &str, request: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 key");
    let content = format!(
        "{}.{}.{}",
        header(request, "webhook-id"),
        header(request, "webhook-timestamp"),
        String::from_utf8(request.body.clone()).expect("utf-8 body")
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(content.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    header(request, "webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

pub(crate) async fn deliver(app: &TestApp) -> samgate::webhooks::DeliverySummary {
    samgate::webhooks::run_once(&app.app, app.app.clock.now())
        .await
        .expect("delivery run")
}

/// Queues a delivery again, as an operator would.
async fn replay(app: &TestApp, delivery: i64) {
    samgate::webhooks::replay(
        &app.app,
        delivery,
        &Actor::parse("test"),
        app.app.clock.now(),
    )
    .await
    .expect("replay");
}

async fn add_endpoint(app: &TestApp, url: &str, events: &[&str]) -> (uuid::Uuid, String) {
    let events: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
    let (endpoint, secret) = samgate::webhooks::add_endpoint(
        &app.app,
        url,
        &events,
        None,
        &Actor::parse("test"),
        app.app.clock.now(),
    )
    .await
    .expect("add endpoint");
    (endpoint.id, secret.expose().to_owned())
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    status: String,
    attempts: i32,
    last_status: Option<i32>,
    last_error: Option<String>,
}

async fn deliveries(app: &TestApp) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, status, attempts, last_status, last_error FROM webhook_deliveries ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("deliveries")
}

#[tokio::test]
async fn a_consent_is_announced_with_a_signature_an_independent_verifier_accepts() {
    let app = quiet_app().await;
    let receiver = Receiver::start().await;
    let (_, secret) = add_endpoint(&app, &receiver.url(), &["partner.consented"]).await;
    app.consent_partner(Contoso).await;

    assert_eq!(deliver(&app).await.delivered, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert!(verifies(&secret, request), "signature must verify");
    assert!(header(request, "webhook-id").starts_with("msg_"));
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
    assert_eq!(body["type"], "partner.consented");
    assert_eq!(
        body["data"]["partner_tenant_id"],
        ms_emulator::DEMO_CONTOSO.to_string()
    );
    // A tampered body does not verify.
    let mut tampered = request.clone();
    tampered.body.push(b' ');
    assert!(!verifies(&secret, &tampered));

    let rows = deliveries(&app).await;
    assert_eq!(rows[0].status, "delivered");
    assert_eq!(rows[0].last_status, Some(204));
    // Nothing is due any more: a second run sends nothing.
    assert_eq!(deliver(&app).await, Default::default());

    // Replay: the same message again, with the same webhook-id.
    replay(&app, rows[0].id).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        header(&received[0], "webhook-id"),
        header(&received[1], "webhook-id")
    );
}

#[tokio::test]
async fn during_a_secret_rotation_both_secrets_sign_until_the_overlap_ends() {
    let app = quiet_app().await;
    let receiver = Receiver::start().await;
    let (endpoint, old) = add_endpoint(&app, &receiver.url(), &[]).await;
    let new = samgate::webhooks::rotate_secret(
        &app.app,
        endpoint,
        &Actor::parse("test"),
        app.app.clock.now(),
    )
    .await
    .expect("rotate")
    .expose()
    .to_owned();
    app.consent_partner(Contoso).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    let first = &receiver.received()[0];
    assert_eq!(header(first, "webhook-signature").split(' ').count(), 2);
    assert!(verifies(&old, first));
    assert!(verifies(&new, first));

    // After the overlap (24 h by default) only the new secret signs.
    advance(&app, Duration::from_secs(25 * 3600));
    let rows = deliveries(&app).await;
    replay(&app, rows[0].id).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    let second = &receiver.received()[1];
    assert!(verifies(&new, second));
    assert!(!verifies(&old, second));
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_delivery_after_it_comes_back() {
    let app = quiet_app().await;
    // A port with nothing listening: connections are refused.
    let address = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let (_, secret) = add_endpoint(&app, &format!("http://{address}/hook"), &[]).await;
    app.consent_partner(Contoso).await;

    let summary = deliver(&app).await;
    assert_eq!(summary.retrying, 1, "{summary:?}");
    let rows = deliveries(&app).await;
    assert_eq!(rows[0].status, "pending");
    assert_eq!(rows[0].attempts, 1);
    assert!(rows[0].last_error.is_some());
    // Backoff: not due again at once.
    assert_eq!(deliver(&app).await, Default::default());

    let receiver = Receiver::on(address).await;
    advance(&app, Duration::from_secs(60));
    assert_eq!(deliver(&app).await.delivered, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(verifies(&secret, &received[0]));
    let rows = deliveries(&app).await;
    assert_eq!(rows[0].status, "delivered");
    assert_eq!(rows[0].attempts, 2);
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_receivers_unless_allowed() {
    let app = TestApp::builder()
        .with_env("SAMGATE_BACKGROUND_JOBS", "false")
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let port = receiver.address.port();
    // A literal address, and a name that resolves to one (checked after DNS resolution).
    add_endpoint(&app, &format!("http://127.0.0.1:{port}/hook"), &[]).await;
    add_endpoint(&app, &format!("http://localhost:{port}/hook"), &[]).await;
    app.consent_partner(Contoso).await;

    let summary = deliver(&app).await;
    assert_eq!(summary.retrying, 2, "{summary:?}");
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
    for row in deliveries(&app).await {
        let error = row.last_error.expect("an error");
        assert!(error.contains("internal address"), "{error}");
    }
}

#[tokio::test]
async fn housekeeping_announces_an_expired_invitation_once() {
    let app = quiet_app().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url(), &["invitation.expired"]).await;
    app.invite("Contoso", None).await;
    let housekeeping = || samgate::jobs::housekeeping::run_once(&app.app, app.app.clock.now());
    assert_eq!(housekeeping().await.expect("run").invitations_expired, 0);
    advance(&app, Duration::from_secs(8 * 86_400));
    assert_eq!(housekeeping().await.expect("run").invitations_expired, 1);
    assert_eq!(housekeeping().await.expect("run").invitations_expired, 0);
    assert_eq!(deliver(&app).await.delivered, 1);
    let body: serde_json::Value =
        serde_json::from_slice(&receiver.received()[0].body).expect("json");
    assert_eq!(body["type"], "invitation.expired");
    assert_eq!(body["data"]["partner_name"], "Contoso");
}

#[tokio::test]
async fn housekeeping_prunes_old_call_records_and_delivered_webhooks() {
    let app = quiet_app().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url(), &[]).await;
    app.consent_partner(Contoso).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    sqlx::query(
        "INSERT INTO proxy_calls (occurred_at, partner_tenant_id, upstream, method, route, status, latency_ms)
         VALUES ($1, $2, 'partner-center', 'GET', '/x', 200, 1)",
    )
    .bind(app.app.clock.now())
    .bind(ms_emulator::DEMO_CONTOSO)
    .execute(&app.pool)
    .await
    .expect("call record");
    advance(&app, Duration::from_secs(31 * 86_400));
    let summary = samgate::jobs::housekeeping::run_once(&app.app, app.app.clock.now())
        .await
        .expect("run");
    assert_eq!(summary.proxy_calls_pruned, 1);
    assert_eq!(summary.deliveries_pruned, 1);
}
