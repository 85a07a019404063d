//! Real faults, with nothing lost: PostgreSQL restarted under proxy traffic and during a keep-alive
//! sweep, one of three `samgate serve` processes killed (SIGKILL) while it holds a grant's row
//! lock, and Microsoft dropping connections and answering 5xx for a minute. Each test runs its own
//! PostgreSQL cluster, so stopping it disturbs no other test; afterwards every grant opens, the
//! stored refresh token is the newest one, and no partner, call record or webhook is lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ms_emulator::{DEMO_CONTOSO, DEMO_FABRIKAM, Fault};
use samgate::db;
use samgate::domain::Actor;
use samgate::health::partner::DEGRADED_AFTER;
use samgate::jobs::keep_alive::{self, Selection};
use samgate::local_pg::{LocalCluster, ServerBinaries};
use uuid::Uuid;

use crate::harness::DemoPartner::{Contoso, Fabrikam};
use crate::harness::instance::Instance;
use crate::harness::{TestApp, TestDb};
use crate::lifecycle::advance;

/// Longest a single call may take before the test calls it a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a call may take while the database is away: the pool gives up after 3 s per
/// acquisition, and a call needs at most a few.
const FAIL_FAST: Duration = Duration::from_secs(12);

/// A PostgreSQL cluster of one test, under `CARGO_TARGET_TMPDIR`; stopped and removed on drop,
/// also when the test panics.
struct OwnCluster {
    cluster: Arc<LocalCluster>,
    root: PathBuf,
}

impl OwnCluster {
    /// Initialises and starts a durable cluster (fsync on, like production) in a new directory.
    async fn start(label: &str) -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "faults-{label}-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        ));
        let prepared = root.clone();
        let cluster = tokio::task::spawn_blocking(move || {
            let binaries = ServerBinaries::discover().unwrap_or_else(|e| panic!("{e}"));
            LocalCluster::new(prepared, binaries).unwrap_or_else(|e| panic!("{e}"))
        })
        .await
        .expect("prepare the cluster directory");
        let own = Self {
            cluster: Arc::new(cluster),
            root,
        };
        own.blocking(|cluster| {
            cluster
                .ensure_initialized()
                .unwrap_or_else(|e| panic!("{e}"));
            cluster.start(true).unwrap_or_else(|e| panic!("{e}"));
        })
        .await;
        own
    }

    async fn blocking(&self, work: impl FnOnce(&LocalCluster) + Send + 'static) {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || work(&cluster))
            .await
            .expect("cluster command");
    }

    /// A migrated database `samgate` on this cluster, for `TestApp::builder().with_database`.
    async fn database(&self) -> TestDb {
        let admin = self.cluster.connect_options("postgres");
        let pool = db::connect(admin.clone(), 1)
            .await
            .expect("connect to the test's own cluster");
        sqlx::query("CREATE DATABASE samgate")
            .execute(&pool)
            .await
            .expect("create database");
        pool.close().await;
        let pool = db::connect(admin.clone().database("samgate"), 2)
            .await
            .expect("connect to the new database");
        db::migrate(&pool).await.expect("migrate");
        pool.close().await;
        TestDb::on_own_server(admin, "samgate", self.cluster.database_url("samgate"))
    }

    /// Stops the server at once, as a crash or a failover does (no checkpoint, clients cut off).
    async fn crash(&self) {
        self.blocking(|cluster| cluster.stop(false).unwrap_or_else(|e| panic!("{e}")))
            .await;
    }

    /// Starts the server again on the same socket (crash recovery runs first).
    async fn restart(&self) {
        self.blocking(|cluster| cluster.start(true).unwrap_or_else(|e| panic!("{e}")))
            .await;
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if self.cluster.is_running() {
            let _ = self.cluster.stop(false);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What a caller saw of one call.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    /// samgate's error code (`{"code": …}`) when samgate answered the error itself.
    code: Option<String>,
    /// samgate's error message, when samgate answered the error itself.
    message: Option<String>,
    /// Whether the answer came from Microsoft (`x-samgate-upstream`).
    from_upstream: bool,
    took: Duration,
}

impl Answer {
    /// Whether samgate queued a call record for it: every call that reached a known partner,
    /// which is all but those refused before the partner was looked up (`service_unavailable`
    /// while the key or the partner cannot be read; a token the database could not provide for a
    /// known partner is recorded).
    fn recorded(&self) -> bool {
        self.code.as_deref() != Some("service_unavailable")
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.contains("no token could be obtained"))
    }
}

async fn call(http: &reqwest::Client, url: &str, key: &str, headers: &[(&str, &str)]) -> Answer {
    let started = Instant::now();
    let mut request = http.get(url).bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(CALL_TIMEOUT, request.send())
        .await
        .unwrap_or_else(|_| panic!("a call to {url} hung for {CALL_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("samgate dropped a call to {url}: {e}"));
    let status = response.status().as_u16();
    let from_upstream = response.headers().contains_key("x-samgate-upstream");
    let body = tokio::time::timeout(CALL_TIMEOUT, response.bytes())
        .await
        .unwrap_or_else(|_| panic!("the body of a call to {url} hung"))
        .unwrap_or_else(|e| panic!("the body of a call to {url} broke off: {e}"));
    let (code, message) = if status == 200 || from_upstream {
        (None, None)
    } else {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "samgate's {status} is not its JSON error: {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error without a message: {json}"
        );
        (
            Some(
                json["code"]
                    .as_str()
                    .unwrap_or_else(|| panic!("an error without a code: {json}"))
                    .to_owned(),
            ),
            json["message"].as_str().map(str::to_owned),
        )
    };
    Answer {
        status,
        code,
        message,
        from_upstream,
        took: started.elapsed(),
    }
}

fn customers_url(base: &str, tenant: Uuid) -> String {
    format!("{base}/api/v1/partners/{tenant}/partner-center/v1/customers?size=1")
}

/// Calls until one answers 200 (at most `within`), returning every answer seen.
async fn until_ok(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    within: Duration,
    what: &str,
) -> Vec<Answer> {
    let deadline = Instant::now() + within;
    let mut answers = Vec::new();
    loop {
        let answer = call(http, url, key, &[]).await;
        let ok = answer.status == 200;
        answers.push(answer);
        if ok {
            return answers;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no successful call within {within:?}: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The refresh token the partner's grant holds, opened by the vault (panics if it does not open).
async fn stored_refresh_token(app: &TestApp, tenant: Uuid) -> String {
    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT g.sealed_refresh_token FROM grants g JOIN partners p ON p.id = g.partner_id \
         WHERE p.tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(&app.pool)
    .await
    .expect("read the grant")
    .unwrap_or_else(|| panic!("the grant of {tenant} is gone"));
    use secrecy::ExposeSecret;
    app.app
        .vault
        .open_string(
            &sealed,
            &samgate::vault::SealContext::new(
                samgate::onboarding::REFRESH_TOKEN_PURPOSE,
                &tenant.to_string(),
            ),
        )
        .unwrap_or_else(|e| panic!("the grant of {tenant} no longer opens: {e}"))
        .expose_secret()
        .to_owned()
}

async fn partner_status(app: &TestApp, tenant: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM partners WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.pool)
        .await
        .expect("partner status")
}

async fn audited(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = $1")
        .bind(action)
        .fetch_one(&app.pool)
        .await
        .expect("audit count")
}

/// Waits until the call records of `answers` are written (or counted as dropped), then checks
/// that every one was written, status by status.
async fn assert_every_call_record_written(app: &TestApp, answers: &[Answer]) {
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    for answer in answers.iter().filter(|a| a.recorded()) {
        *expected.entry(i32::from(answer.status)).or_default() += 1;
    }
    let queued: i64 = expected.values().sum();
    let deadline = Instant::now() + Duration::from_secs(15);
    let written = loop {
        let rows: Vec<(i32, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM proxy_calls GROUP BY status")
                .fetch_all(&app.pool)
                .await
                .expect("call records");
        let written: BTreeMap<i32, i64> = rows.into_iter().collect();
        let dropped = i64::try_from(app.app.proxy.recorder().dropped()).expect("count");
        if written.values().sum::<i64>() + dropped >= queued || Instant::now() > deadline {
            break written;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        app.app.proxy.recorder().dropped(),
        0,
        "the queue never filled, so no call record may be dropped"
    );
    assert_eq!(
        written, expected,
        "call records written (status → count) against the calls answered"
    );
}

/// Polls `probe` every 50 ms until it holds, or panics with `what` after `within`.
async fn wait_for<F, Fut>(within: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !probe().await {
        assert!(Instant::now() < deadline, "{what} (waited {within:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn proxy_calls_through_a_postgres_restart_fail_clearly_and_afterwards_nothing_is_lost() {
    let cluster = OwnCluster::start("restart-proxy").await;
    let app = TestApp::builder()
        .with_database(cluster.database().await)
        .with_env("SAMGATE_BACKGROUND_JOBS", "false")
        .with_consented(Contoso)
        .spawn()
        .await;
    let key = app.api_key("fleet", None, false).await;
    app.settle_key_changes().await;
    let url = customers_url(&app.address, DEMO_CONTOSO);
    let mut answers = vec![call(&app.client, &url, &key, &[]).await];
    assert_eq!(answers[0].status, 200, "before the fault: {answers:?}");

    // Six callers keep calling while PostgreSQL crashes and comes back.
    let running = Arc::new(AtomicBool::new(true));
    let callers: Vec<_> = (0..6)
        .map(|_| {
            let (http, url, key, running) = (
                app.client.clone(),
                url.clone(),
                key.clone(),
                running.clone(),
            );
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while running.load(Ordering::Relaxed) {
                    seen.push(call(&http, &url, &key, &[]).await);
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.crash().await;
    // While the database is away the cached access token falls due: calls now need a refresh,
    // and a refresh needs the grant's row.
    advance(&app, Duration::from_secs(2 * 3600));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    let mut during = Vec::new();
    for caller in callers {
        during.extend(caller.await.expect("caller"));
    }

    let failed: Vec<&Answer> = during.iter().filter(|a| a.status != 200).collect();
    assert!(
        !failed.is_empty(),
        "the restart must be felt by some call, or this test proves nothing"
    );
    for answer in &during {
        assert!(
            answer.took < FAIL_FAST,
            "a call waited {:?} on the missing database instead of failing fast",
            answer.took
        );
        if answer.status != 200 {
            assert!(
                answer.status >= 500
                    && !answer.from_upstream
                    && matches!(
                        answer.code.as_deref(),
                        Some("service_unavailable" | "upstream_unavailable")
                    ),
                "a database outage must answer samgate's retryable 5xx, never a 4xx that blames \
                 the caller or the partner: {answer:?}"
            );
        }
    }
    answers.extend(during);

    // Without restarting samgate: new calls succeed, several in a row.
    answers.extend(
        until_ok(
            &app.client,
            &url,
            &key,
            Duration::from_secs(15),
            "after the restart",
        )
        .await,
    );
    for _ in 0..5 {
        let answer = call(&app.client, &url, &key, &[]).await;
        assert_eq!(answer.status, 200, "after the restart: {answer:?}");
        answers.push(answer);
    }

    let issued = app.microsoft().issued_refresh_tokens();
    assert_eq!(
        Some(&stored_refresh_token(&app, DEMO_CONTOSO).await),
        issued.last(),
        "the grant holds the newest refresh token Microsoft issued"
    );
    assert_eq!(partner_status(&app, DEMO_CONTOSO).await, "healthy");
    assert_eq!(audited(&app, "partner.degraded").await, 0);
    assert_every_call_record_written(&app, &answers).await;
}

#[tokio::test]
async fn a_postgres_restart_during_a_keep_alive_sweep_loses_no_grant_and_the_next_sweep_refreshes_them()
 {
    let cluster = OwnCluster::start("restart-sweep").await;
    let app = TestApp::builder()
        .with_database(cluster.database().await)
        .with_env("SAMGATE_BACKGROUND_JOBS", "false")
        .with_env("SAMGATE_KEEPALIVE_JITTER_MS", "0")
        .with_consented(Contoso)
        .spawn()
        .await;
    app.consent_partner(Fabrikam).await;
    let partners = [DEMO_CONTOSO, DEMO_FABRIKAM];
    advance(&app, Duration::from_secs(15 * 86_400));

    // Both refreshes reach Microsoft, which answers slowly; meanwhile PostgreSQL crashes with
    // both grants locked in open transactions, and comes back.
    let before = app.microsoft().token_calls("refresh_token");
    app.microsoft().fail_next(
        Fault::grant_type("refresh_token")
            .latency(Duration::from_secs(3))
            .times(2),
    );
    let sweep = {
        let (inner, now) = (app.app.clone(), app.app.clock.now());
        tokio::spawn(async move { keep_alive::run_once(&inner, now).await })
    };
    let microsoft = app.microsoft();
    wait_for(
        Duration::from_secs(10),
        "both keep-alive refreshes should reach Microsoft",
        move || {
            let calls = microsoft.token_calls("refresh_token");
            async move { calls - before >= 2 }
        },
    )
    .await;
    cluster.crash().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.restart().await;
    let summary = tokio::time::timeout(Duration::from_secs(30), sweep)
        .await
        .expect("the interrupted sweep ends instead of hanging")
        .expect("sweep task")
        .expect("the interrupted sweep reports its outcome");
    // The answers Microsoft gave could not be stored: the refreshes count as failed, never as
    // evidence against the partners.
    assert_eq!(
        (
            summary.refreshed,
            summary.needs_consent,
            summary.mfa_required,
            summary.failed
        ),
        (0, 0, 0, 2),
        "{summary}"
    );
    for tenant in partners {
        assert_eq!(partner_status(&app, tenant).await, "healthy", "{tenant}");
        stored_refresh_token(&app, tenant).await;
    }

    // The claims' lease runs out and the next sweep, in the same process, refreshes both.
    advance(&app, Duration::from_secs(6 * 60));
    let summary = keep_alive::run_once(&app.app, app.app.clock.now())
        .await
        .expect("the sweep after the restart");
    assert_eq!(summary.refreshed, 2, "{summary}");
    assert_eq!(summary.failed, 0, "{summary}");

    let issued = app.microsoft().issued_refresh_tokens();
    let newest: std::collections::BTreeSet<&String> = issued.iter().rev().take(2).collect();
    let key = app.api_key("fleet", None, false).await;
    for tenant in partners {
        let stored = stored_refresh_token(&app, tenant).await;
        assert!(
            newest.contains(&stored),
            "the grant of {tenant} holds the refresh token of the last sweep"
        );
        assert_eq!(partner_status(&app, tenant).await, "healthy", "{tenant}");
        let answer = call(&app.client, &customers_url(&app.address, tenant), &key, &[]).await;
        assert_eq!(answer.status, 200, "{tenant}: {answer:?}");
    }
    assert_eq!(audited(&app, "partner.degraded").await, 0);
}

/// Whether some transaction holds the partner's grant row locked (a `NOWAIT` probe).
async fn grant_row_locked(app: &TestApp, tenant: Uuid) -> bool {
    let mut tx = app.pool.begin().await.expect("probe transaction");
    let probe = sqlx::query(
        "SELECT 1 FROM grants g JOIN partners p ON p.id = g.partner_id \
         WHERE p.tenant_id = $1 FOR UPDATE OF g NOWAIT",
    )
    .bind(tenant)
    .execute(&mut *tx)
    .await;
    let _ = tx.rollback().await;
    match probe {
        Ok(_) => false,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => true,
        Err(e) => panic!("lock probe: {e}"),
    }
}

#[tokio::test]
async fn killing_an_instance_mid_refresh_frees_the_grant_and_the_others_serve_the_partner_at_once()
{
    let cluster = OwnCluster::start("kill-instance").await;
    let app = TestApp::builder()
        .with_database(cluster.database().await)
        .with_env("SAMGATE_BACKGROUND_JOBS", "false")
        .with_env("SAMGATE_KEEPALIVE_JITTER_MS", "0")
        .with_consented(Contoso)
        .spawn()
        .await;
    let key = app.api_key("fleet", None, false).await;
    let mut instances = [
        Instance::start(&app, &[("SAMGATE_BACKGROUND_JOBS", "false")]).await,
        Instance::start(&app, &[("SAMGATE_BACKGROUND_JOBS", "false")]).await,
        Instance::start(&app, &[("SAMGATE_BACKGROUND_JOBS", "false")]).await,
    ];
    let http = reqwest::Client::new();
    // Every instance has a cold cache and no access token is shared yet: the first call through
    // any of them must refresh, under the grant's row lock.
    let shared: i64 = sqlx::query_scalar("SELECT count(*) FROM access_tokens")
        .fetch_one(&app.pool)
        .await
        .expect("access tokens");
    assert_eq!(shared, 0);

    let slow = Duration::from_secs(10);
    app.microsoft()
        .fail_next(Fault::grant_type("refresh_token").latency(slow));
    let before = app.microsoft().token_calls("refresh_token");
    let victim = {
        let (http, url, key) = (
            http.clone(),
            customers_url(&instances[0].url, DEMO_CONTOSO),
            key.clone(),
        );
        tokio::spawn(async move { http.get(url).bearer_auth(key).send().await })
    };
    let microsoft = app.microsoft();
    wait_for(
        Duration::from_secs(10),
        "the first instance's refresh should reach Microsoft",
        move || {
            let calls = microsoft.token_calls("refresh_token");
            async move { calls > before }
        },
    )
    .await;
    assert!(
        grant_row_locked(&app, DEMO_CONTOSO).await,
        "the first instance holds the grant's row lock while Microsoft answers"
    );
    // The other two instances queue behind that lock.
    let survivors: Vec<_> = instances[1..]
        .iter()
        .map(|instance| {
            let (http, url, key) = (
                http.clone(),
                customers_url(&instance.url, DEMO_CONTOSO),
                key.clone(),
            );
            tokio::spawn(async move { call(&http, &url, &key, &[]).await })
        })
        .collect();
    wait_for(
        Duration::from_secs(10),
        "both other instances should wait for the grant's row lock",
        || {
            let pool = app.pool.clone();
            async move {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&pool)
                .await
                .expect("pg_stat_activity");
                waiting >= 2
            }
        },
    )
    .await;
    let issued_before_kill = app.microsoft().issued_refresh_tokens().len();

    instances[0].kill();
    let killed_at = Instant::now();
    for survivor in survivors {
        let answer = survivor.await.expect("survivor call");
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let recovered_in = killed_at.elapsed();
    assert!(
        recovered_in < Duration::from_secs(5),
        "the others served the partner {recovered_in:?} after the kill; the dead instance's \
         Microsoft call would only have ended after {slow:?}"
    );
    assert!(
        victim.await.expect("victim task").is_err(),
        "the killed instance cannot have answered"
    );

    // One redemption by the survivors, and the grant holds what Microsoft issued for it.
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 2);
    let issued = app.microsoft().issued_refresh_tokens();
    assert_eq!(
        issued.len(),
        issued_before_kill + 1,
        "one new refresh token"
    );
    assert_eq!(
        Some(&stored_refresh_token(&app, DEMO_CONTOSO).await),
        issued.last(),
        "the grant holds the refresh token of the survivors' refresh"
    );
    assert_eq!(partner_status(&app, DEMO_CONTOSO).await, "healthy");

    // That token is usable: a forced refresh works and stores its successor.
    let summary = keep_alive::run(
        &app.app,
        app.app.clock.now(),
        Selection::Tenant(DEMO_CONTOSO),
    )
    .await
    .expect("forced refresh");
    assert_eq!(summary.refreshed, 1, "{summary}");
    let issued = app.microsoft().issued_refresh_tokens();
    assert_eq!(
        Some(&stored_refresh_token(&app, DEMO_CONTOSO).await),
        issued.last()
    );
    for instance in &instances[1..] {
        let answer = call(
            &http,
            &customers_url(&instance.url, DEMO_CONTOSO),
            &key,
            &[],
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(partner_status(&app, DEMO_CONTOSO).await, "healthy");
}

/// A webhook receiver on 127.0.0.1 that answers 503 while `down`, and records the `webhook-id`
/// of every delivery it accepts.
struct Receiver {
    url: String,
    down: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<String>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    async fn start() -> Self {
        let down = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (is_down, store) = (down.clone(), accepted.clone());
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let (is_down, store) = (is_down.clone(), store.clone());
                async move {
                    if is_down.load(Ordering::Relaxed) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    store.lock().expect("lock").push(id);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            url,
            down,
            accepted,
            _shutdown: tx,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Delivery {
    message_id: String,
    event_type: String,
    status: String,
    attempts: i32,
}

async fn deliveries(app: &TestApp) -> Vec<Delivery> {
    sqlx::query_as(
        "SELECT message_id, event_type, status, attempts FROM webhook_deliveries ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("deliveries")
}

async fn webhook_round(app: &TestApp) -> samgate::webhooks::DeliverySummary {
    samgate::webhooks::run_once(&app.app, app.app.clock.now())
        .await
        .expect("webhook delivery run")
}

#[tokio::test]
async fn a_minute_of_dropped_connections_and_5xx_from_microsoft_degrades_at_most_and_loses_nothing()
{
    let cluster = OwnCluster::start("ms-outage").await;
    let app = TestApp::builder()
        .with_database(cluster.database().await)
        .with_env("SAMGATE_BACKGROUND_JOBS", "false")
        .with_env("SAMGATE_WEBHOOKS_ALLOW_PRIVATE", "true")
        .with_consented(Contoso)
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    samgate::webhooks::add_endpoint(
        &app.app,
        &receiver.url,
        &[],
        None,
        &Actor::parse("test"),
        app.app.clock.now(),
    )
    .await
    .expect("webhook endpoint");
    let key = app.api_key("fleet", None, false).await;
    app.settle_key_changes().await;
    let url = customers_url(&app.address, DEMO_CONTOSO);
    // The caller waits for nothing: samgate answers at once with what it has.
    let no_wait = [("x-samgate-deadline", "0")];
    let mut answers = vec![call(&app.client, &url, &key, &no_wait).await];
    assert_eq!(answers[0].status, 200, "before the outage: {answers:?}");

    let step = Duration::from_secs(10);
    let outage_started = app.app.clock.now();
    receiver.down.store(true, Ordering::Relaxed);

    // First half-minute: Partner Center answers 503 while the access token is still fresh.
    // Partner Center's failures are not evidence about the partner's grant.
    app.microsoft()
        .fail_next(Fault::path("/v1/").status(503).retry_after(1).fraction(1.0));
    for _ in 0..3 {
        let answer = call(&app.client, &url, &key, &no_wait).await;
        assert!(
            (answer.status == 503 && answer.from_upstream)
                || answer.code.as_deref() == Some("upstream_throttled"),
            "Microsoft's 503 is passed on or answered as throttling: {answer:?}"
        );
        answers.push(answer);
        assert_eq!(partner_status(&app, DEMO_CONTOSO).await, "healthy");
        webhook_round(&app).await;
        advance(&app, step);
    }

    // samgate honours Partner Center's Retry-After (real time) before it asks again.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Second half-minute: the access token is due, and the token endpoint drops connections,
    // then answers 503.
    advance(&app, Duration::from_secs(2 * 3600));
    let token_faults = [
        Fault::grant_type("refresh_token").drop_connection(),
        Fault::grant_type("refresh_token").drop_connection(),
        Fault::grant_type("refresh_token").status(503),
    ];
    for (failures, fault) in (1..).zip(token_faults) {
        app.microsoft().clear_faults();
        app.microsoft().fail_next(fault.fraction(1.0));
        let answer = call(&app.client, &url, &key, &no_wait).await;
        assert!(
            matches!(
                answer.code.as_deref(),
                Some("upstream_unavailable" | "upstream_throttled")
            ),
            "a token endpoint outage is a retryable error, not a refusal: {answer:?}"
        );
        answers.push(answer);
        // The documented state machine: degraded after DEGRADED_AFTER transient failures in a
        // row, never a consent or MFA state.
        let expected = if failures >= DEGRADED_AFTER {
            "degraded"
        } else {
            "healthy"
        };
        assert_eq!(
            partner_status(&app, DEMO_CONTOSO).await,
            expected,
            "after {failures} transient refresh failures"
        );
        webhook_round(&app).await;
        advance(&app, step);
    }
    assert!(app.app.clock.now() - outage_started >= time::Duration::minutes(1));
    let queued = deliveries(&app).await;
    assert!(!queued.is_empty(), "the outage was announced");
    for delivery in &queued {
        assert_eq!(delivery.status, "pending", "kept for retry: {delivery:?}");
        assert!(
            delivery.attempts >= 1,
            "attempted during the outage: {delivery:?}"
        );
    }

    // Microsoft and the receiver are back; samgate recovers without a restart.
    app.microsoft().clear_faults();
    receiver.down.store(false, Ordering::Relaxed);
    answers.extend(
        until_ok(
            &app.client,
            &url,
            &key,
            Duration::from_secs(10),
            "after the outage",
        )
        .await,
    );
    assert_eq!(partner_status(&app, DEMO_CONTOSO).await, "healthy");
    assert_eq!(audited(&app, "partner.degraded").await, 1);
    assert_eq!(audited(&app, "partner.recovered").await, 1);
    let issued = app.microsoft().issued_refresh_tokens();
    assert_eq!(
        Some(&stored_refresh_token(&app, DEMO_CONTOSO).await),
        issued.last(),
        "the grant holds the newest refresh token Microsoft issued"
    );

    // Every event of the outage and of the recovery reaches the receiver once its backoff ends.
    advance(&app, Duration::from_secs(15 * 60));
    let summary = webhook_round(&app).await;
    assert_eq!(summary.failed, 0, "{summary:?}");
    let all = deliveries(&app).await;
    let accepted = receiver.accepted.lock().expect("lock").clone();
    for delivery in &all {
        assert_eq!(delivery.status, "delivered", "{delivery:?}");
        assert!(
            accepted.contains(&delivery.message_id),
            "the receiver got {delivery:?}"
        );
    }
    let mut types: Vec<&str> = all.iter().map(|d| d.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "grant.refresh_failed",
            "grant.refresh_failed",
            "partner.recovered"
        ],
        "the first failure, the one that degraded the partner, and the recovery"
    );
    assert!(
        queued
            .iter()
            .all(|q| all.iter().any(|d| d.message_id == q.message_id))
    );
    assert_every_call_record_written(&app, &answers).await;
}
