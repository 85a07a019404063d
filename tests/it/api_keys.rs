//! API clients and keys against real PostgreSQL: verification, rejection, caching, revocation
//! across instances, batched `last_used_at`, and keys never at rest or in logs in clear.

use std::sync::Arc;
use std::time::{Duration, Instant};

use samgate::api_keys::{
    self, ApiKeyError, ApiKeyVerifier, IssuedKey, KeyRejection, NewClient, PartnerScope, Principal,
};
use samgate::app::App;
use samgate::domain::Actor;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::harness::instance::run_cli;
use crate::harness::{TestApp, logs};

const CONTOSO: Uuid = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);
const FABRIKAM: Uuid = Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222);

impl TestApp {
    async fn create_client(&self, name: &str, partners: Option<Vec<Uuid>>) -> api_keys::Client {
        api_keys::create_client(
            &self.pool,
            NewClient {
                name,
                description: Some("a test client"),
                partners,
                read_only: false,
                created_by: &Actor::parse("test"),
            },
            self.app.clock.now(),
        )
        .await
        .expect("create client")
    }

    async fn issue_key(&self, client_id: Uuid, expires_in: Option<Duration>) -> (Uuid, IssuedKey) {
        let now = self.app.clock.now();
        let (record, key) = api_keys::issue_key(
            &self.pool,
            client_id,
            expires_in.map(|d| now + d),
            &Actor::parse("test"),
            now,
        )
        .await
        .expect("issue key");
        (record.id, key)
    }

    async fn verify(&self, key: &str) -> Result<std::sync::Arc<Principal>, KeyRejection> {
        self.app.api_keys.verify(key, self.app.clock.now()).await
    }

    /// Runs the verifier's change listener and waits until it is subscribed.
    async fn listen_for_key_changes(
        &self,
        verifier: &ApiKeyVerifier,
    ) -> tokio::task::JoinHandle<()> {
        let task = tokio::spawn(verifier.clone().listen_for_revocations());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !verifier.is_listening() {
            assert!(Instant::now() < deadline, "the listener did not subscribe");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task
    }

    /// A second samgate instance on the same database (its own pool, caches and listener).
    fn second_instance(&self) -> App {
        let pool = samgate::db::connect_lazy(self.db.options(), 4);
        App::build(self.app.config.clone(), pool, self.clock.clone()).expect("second app")
    }
}

/// Polls `verify` on `app` until it is rejected; fails after `within`.
async fn rejected_within(app: &TestApp, key: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match app.verify(key).await {
            Err(KeyRejection::Invalid) => return start.elapsed(),
            other => assert!(
                start.elapsed() < within,
                "still {other:?} after {:?}",
                start.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_created_key_verifies_as_its_client_with_the_clients_scope() {
    let app = TestApp::spawn().await;
    let now = app.app.clock.now();
    let client = api_keys::create_client(
        &app.pool,
        NewClient {
            name: "  billing-sync ",
            description: Some("invoices"),
            partners: Some(vec![CONTOSO]),
            read_only: true,
            created_by: &Actor::parse("test"),
        },
        now,
    )
    .await
    .expect("create client");
    assert_eq!(client.name, "billing-sync");
    let (key_id, key) = app
        .issue_key(client.id, Some(Duration::from_secs(3600)))
        .await;

    let principal = app.verify(key.expose_secret()).await.expect("valid key");
    assert_eq!(principal.client_id, client.id);
    assert_eq!(principal.client_name, "billing-sync");
    assert_eq!(principal.key_id, key_id);
    assert_eq!(principal.scope, PartnerScope::Only([CONTOSO].into()));
    assert!(principal.read_only);
    assert!(principal.allows_partner(CONTOSO));
    assert!(!principal.allows_partner(FABRIKAM));
    assert!(principal.allows_method(&reqwest::Method::GET));
    assert!(!principal.allows_method(&reqwest::Method::POST));

    let everyone = app.create_client("reporting", None).await;
    let (_, key) = app.issue_key(everyone.id, None).await;
    let principal = app.verify(key.expose_secret()).await.expect("valid key");
    assert_eq!(principal.scope, PartnerScope::All);
    assert!(!principal.read_only);
    assert!(principal.allows_method(&reqwest::Method::DELETE));

    let listed = api_keys::list_clients(&app.pool).await.expect("list");
    assert_eq!(
        listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["billing-sync", "reporting"]
    );
}

#[tokio::test]
async fn malformed_keys_are_rejected_before_any_lookup_and_unknown_keys_after_one() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", None).await;
    let (_, key) = app.issue_key(client.id, None).await;
    let valid = key.expose_secret();
    let verifier = &app.app.api_keys;
    app.settle_key_changes().await;

    let before = verifier.lookups();
    for malformed in [
        "",
        "sgk_",
        &valid[..valid.len() - 1],
        &format!("Bearer {valid}"),
        &format!("{valid} "),
        &valid.to_uppercase(),
        "sgk_' OR 1=1 --0000000000000000000000000000000",
    ] {
        assert_eq!(
            app.verify(malformed).await,
            Err(KeyRejection::Invalid),
            "{malformed:?}"
        );
    }
    assert_eq!(
        verifier.lookups(),
        before,
        "a malformed key reached the database"
    );

    // Well-formed but never issued: one lookup, then the short negative cache answers.
    let unknown = format!("sgk_{}", "A".repeat(43));
    assert_eq!(app.verify(&unknown).await, Err(KeyRejection::Invalid));
    assert_eq!(verifier.lookups(), before + 1);
    for _ in 0..20 {
        assert_eq!(app.verify(&unknown).await, Err(KeyRejection::Invalid));
    }
    assert_eq!(
        verifier.lookups(),
        before + 1,
        "unknown keys flood the database"
    );
}

#[tokio::test]
async fn a_key_stored_after_a_cached_miss_works_before_the_miss_expires() {
    let app = TestApp::spawn().await;
    let _listener = app.listen_for_key_changes(&app.app.api_keys).await;
    let client = app.create_client("billing", None).await;
    // A key we know in advance, so its "unknown" answer can be cached before it is stored.
    let key = format!("sgk_{}A", "C".repeat(42));
    assert_eq!(app.verify(&key).await, Err(KeyRejection::Invalid));
    let now = app.app.clock.now();
    samgate::db::api_clients::insert_key(
        &app.pool,
        &samgate::db::api_clients::NewKeyRow {
            id: Uuid::now_v7(),
            client_id: client.id,
            prefix: &key[..8],
            key_hash: &Sha256::digest(key.as_bytes()),
            created_by: &Actor::parse("test"),
            expires_at: None,
        },
        now,
    )
    .await
    .expect("store key");
    // The insert's notification drops the cached miss well inside its 2 s lifetime.
    let start = Instant::now();
    while app.verify(&key).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "the cached miss outlived the insert"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_expired_key_is_rejected_even_while_cached() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", None).await;
    let (_, key) = app
        .issue_key(client.id, Some(Duration::from_secs(3600)))
        .await;
    assert!(app.verify(key.expose_secret()).await.is_ok());
    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        app.verify(key.expose_secret()).await,
        Err(KeyRejection::Invalid)
    );
    assert!(logs::captured().contains("api_key.rejection=\"expired\""));

    let now = app.app.clock.now();
    let past =
        api_keys::issue_key(&app.pool, client.id, Some(now), &Actor::parse("test"), now).await;
    assert!(
        matches!(past, Err(ApiKeyError::ExpiryInThePast)),
        "{past:?}"
    );
}

#[tokio::test]
async fn a_revoked_key_is_rejected_at_once_on_the_revoking_instance() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", None).await;
    let (key_id, key) = app.issue_key(client.id, None).await;
    let (_, other_key) = app.issue_key(client.id, None).await;
    assert!(app.verify(key.expose_secret()).await.is_ok());
    assert!(app.verify(other_key.expose_secret()).await.is_ok());

    let now = app.app.clock.now();
    let revoked = app
        .app
        .api_keys
        .revoke_key(key_id, &Actor::parse("test"), now)
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_by, Some(Actor::parse("test")));
    // No listener runs here: the local invalidation alone must do it.
    assert_eq!(
        app.verify(key.expose_secret()).await,
        Err(KeyRejection::Invalid)
    );
    assert!(app.verify(other_key.expose_secret()).await.is_ok());

    let again = app
        .app
        .api_keys
        .revoke_key(key_id, &Actor::parse("test"), now)
        .await;
    assert!(
        matches!(again, Err(ApiKeyError::KeyAlreadyRevoked(_))),
        "{again:?}"
    );
    let unknown = app
        .app
        .api_keys
        .revoke_key(Uuid::now_v7(), &Actor::parse("test"), now)
        .await;
    assert!(
        matches!(unknown, Err(ApiKeyError::KeyNotFound(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn keys_of_a_disabled_client_are_rejected_and_no_new_keys_are_issued() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", None).await;
    let (_, key) = app.issue_key(client.id, None).await;
    assert!(app.verify(key.expose_secret()).await.is_ok());
    let now = app.app.clock.now();
    app.app
        .api_keys
        .disable_client(client.id, &Actor::parse("test"), now)
        .await
        .expect("disable");
    assert_eq!(
        app.verify(key.expose_secret()).await,
        Err(KeyRejection::Invalid)
    );
    let issued = api_keys::issue_key(&app.pool, client.id, None, &Actor::parse("test"), now).await;
    assert!(
        matches!(issued, Err(ApiKeyError::ClientDisabled(_))),
        "{issued:?}"
    );
}

#[tokio::test]
async fn a_revocation_on_another_instance_reaches_this_one_within_seconds() {
    let app = TestApp::spawn().await;
    let listener = app.listen_for_key_changes(&app.app.api_keys).await;
    let client = app.create_client("billing", None).await;
    let (key_id, key) = app.issue_key(client.id, None).await;
    assert!(app.verify(key.expose_secret()).await.is_ok());
    let lookups = app.app.api_keys.lookups();
    assert!(app.verify(key.expose_secret()).await.is_ok());
    assert_eq!(app.app.api_keys.lookups(), lookups, "the key is cached");

    // Revoked by another instance through the plain library call: nothing touches our cache but
    // the database notification (our positive cache lifetime is 30 s).
    let other = app.second_instance();
    api_keys::revoke_key(
        &other.pool,
        key_id,
        &Actor::parse("test"),
        other.clock.now(),
    )
    .await
    .expect("revoke");
    let took = rejected_within(&app, key.expose_secret(), Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));
    listener.abort();
}

#[tokio::test]
async fn scope_changes_and_disabling_on_another_instance_reach_this_one() {
    let app = TestApp::spawn().await;
    let _listener = app.listen_for_key_changes(&app.app.api_keys).await;
    let client = app.create_client("billing", Some(vec![CONTOSO])).await;
    let (_, key) = app.issue_key(client.id, None).await;
    let principal = app.verify(key.expose_secret()).await.expect("valid");
    assert!(!principal.allows_partner(FABRIKAM));

    let other = app.second_instance();
    let now = other.clock.now();
    other
        .api_keys
        .set_client_partners(client.id, Some(vec![FABRIKAM]), &Actor::parse("test"), now)
        .await
        .expect("rescope");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let principal = app.verify(key.expose_secret()).await.expect("valid");
        if principal.allows_partner(FABRIKAM) {
            assert!(!principal.allows_partner(CONTOSO));
            break;
        }
        assert!(Instant::now() < deadline, "the new scope did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    api_keys::disable_client(&other.pool, client.id, &Actor::parse("test"), now)
        .await
        .expect("disable");
    rejected_within(&app, key.expose_secret(), Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_verified_key_is_answered_from_memory_even_with_the_database_down() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", None).await;
    let (_, key) = app.issue_key(client.id, None).await;
    let (_, cold_key) = app.issue_key(client.id, None).await;
    let verifier = &app.app.api_keys;
    app.settle_key_changes().await;
    let before = verifier.lookups();

    // 200 concurrent first uses of a key: one database query (single flight).
    let now = app.app.clock.now();
    let results = futures_util::future::join_all(
        (0..200).map(|_| verifier.verify(cold_key.expose_secret(), now)),
    )
    .await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(verifier.lookups(), before + 1);

    assert!(app.verify(key.expose_secret()).await.is_ok());
    assert_eq!(verifier.lookups(), before + 2);
    for _ in 0..100 {
        assert!(app.verify(key.expose_secret()).await.is_ok());
    }
    assert_eq!(
        verifier.lookups(),
        before + 2,
        "a cached key went to the database"
    );

    // Not just our counter: with the database refusing connections, cached keys still verify.
    app.db.take_offline().await;
    assert!(app.verify(key.expose_secret()).await.is_ok());
    assert!(app.verify(cold_key.expose_secret()).await.is_ok());
    // An uncached key cannot be checked: unavailable (503 for the caller), not "invalid".
    let unknown = format!("sgk_{}", "B".repeat(42) + "A");
    assert_eq!(app.verify(&unknown).await, Err(KeyRejection::Unavailable));
    app.db.bring_online().await;
}

#[tokio::test]
async fn last_used_at_is_written_in_batches_not_per_request() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", None).await;
    let (key_id, key) = app.issue_key(client.id, None).await;
    let (idle_id, _idle) = app.issue_key(client.id, None).await;
    for _ in 0..20 {
        assert!(app.verify(key.expose_secret()).await.is_ok());
        app.clock.advance(Duration::from_secs(1));
    }
    let last_use = app.app.clock.now() - Duration::from_secs(1);
    let last_used = |id: Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<time::OffsetDateTime>>(
                "SELECT last_used_at FROM api_keys WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("last_used_at")
        }
    };
    assert_eq!(
        last_used(key_id).await,
        None,
        "a use was written per request"
    );

    assert_eq!(app.app.api_keys.flush_last_used().await.expect("flush"), 1);
    let stored = last_used(key_id).await.expect("recorded");
    assert!(
        (stored - last_use).abs() < time::Duration::milliseconds(1),
        "{stored} vs {last_use}"
    );
    assert_eq!(last_used(idle_id).await, None);
    assert_eq!(app.app.api_keys.flush_last_used().await.expect("flush"), 0);

    let listed = api_keys::list_keys(&app.pool, client.id)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|k| k.id == key_id && k.last_used_at.is_some())
    );
}

#[tokio::test]
async fn keys_are_never_stored_audited_listed_or_logged_in_clear() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", Some(vec![CONTOSO])).await;
    let (key_id, key) = app
        .issue_key(client.id, Some(Duration::from_secs(60)))
        .await;
    let secret = key.expose_secret().to_owned();
    let body = &secret[4..];
    assert!(app.verify(&secret).await.is_ok());
    app.clock.advance(Duration::from_secs(120));
    assert!(app.verify(&secret).await.is_err());
    app.app
        .api_keys
        .revoke_key(key_id, &Actor::parse("test"), app.app.clock.now())
        .await
        .expect("revoke");
    app.app.api_keys.flush_last_used().await.expect("flush");

    let (hash, prefix): (Vec<u8>, String) =
        sqlx::query_as("SELECT key_hash, prefix FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert_eq!(hash, Sha256::digest(secret.as_bytes()).to_vec());
    assert_eq!(prefix, &secret[..8]);
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT k::text FROM api_keys k UNION ALL SELECT a::text FROM audit_events a
         UNION ALL SELECT c::text FROM api_clients c",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    // Only the 4 characters of the prefix may appear; any 8 consecutive ones may not.
    for row in &rows {
        for window in body.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).expect("ascii");
            assert!(!row.contains(window), "key material in {row}");
        }
    }
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("audit");
    assert_eq!(
        actions,
        ["api_client.created", "api_key.issued", "api_key.revoked"]
    );

    let listed = api_keys::list_keys(&app.pool, client.id)
        .await
        .expect("list");
    let shown = format!("{listed:?} {key:?} {:?}", app.app.api_keys);
    assert!(!shown.contains(body), "{shown}");
    assert!(!logs::captured().contains(body), "the key was logged");
}

#[tokio::test]
async fn client_names_are_unique() {
    let app = TestApp::spawn().await;
    app.create_client("billing", None).await;
    let again = api_keys::create_client(
        &app.pool,
        NewClient {
            name: "billing",
            description: None,
            partners: Some(vec![]),
            read_only: false,
            created_by: &Actor::parse("test"),
        },
        app.app.clock.now(),
    )
    .await;
    match again {
        Err(err @ ApiKeyError::DuplicateName(_)) => {
            assert_eq!(err.code(), "api_client_name_taken");
            assert!(err.to_string().contains("billing"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

fn cli(app: &TestApp, args: &[&str]) -> (String, String) {
    // The binary blocks this thread; the runtime's other worker keeps the listener going.
    let output = tokio::task::block_in_place(|| run_cli(app, args));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout} {stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_clients_issues_keys_once_lists_and_revokes_them() {
    let app = TestApp::spawn().await;
    let _listener = app.listen_for_key_changes(&app.app.api_keys).await;
    let contoso = CONTOSO.to_string();

    // A scope must be chosen: forgetting --partner does not silently mean "all partners".
    let output =
        tokio::task::block_in_place(|| run_cli(&app, &["clients", "create", "--name", "billing"]));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--all-partners"));

    cli(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "billing",
            "--partner",
            &contoso,
            "--read-only",
        ],
    );
    let (list, _) = cli(&app, &["clients", "list"]);
    assert!(list.contains("billing"), "{list}");
    assert!(list.contains(&contoso), "{list}");
    assert!(list.contains("read-only"), "{list}");

    let (stdout, stderr) = cli(
        &app,
        &[
            "clients",
            "keys",
            "create",
            "--client",
            "billing",
            "--expires",
            "90d",
        ],
    );
    let keys: Vec<&str> = stdout.lines().filter(|l| l.starts_with("sgk_")).collect();
    assert_eq!(keys.len(), 1, "{stdout}");
    let key = keys[0];
    assert!(stderr.contains("shown only now"), "{stderr}");
    assert!(!stderr.contains(key));
    let principal = app.verify(key).await.expect("the printed key works");
    assert_eq!(principal.client_name, "billing");
    assert!(principal.allows_partner(CONTOSO) && principal.read_only);

    let (listed, _) = cli(&app, &["clients", "keys", "list", "--client", "billing"]);
    assert!(listed.contains(&key[..8]), "{listed}");
    assert!(!listed.contains(key), "{listed}");
    assert!(listed.contains("active"), "{listed}");

    let key_id = principal.key_id.to_string();
    let (revoked, _) = cli(&app, &["clients", "keys", "revoke", &key_id]);
    assert!(revoked.contains("revoked"), "{revoked}");
    rejected_within(&app, key, Duration::from_secs(5)).await;
    let (listed, _) = cli(
        &app,
        &[
            "clients",
            "keys",
            "list",
            "--client",
            &principal.client_id.to_string(),
        ],
    );
    assert!(listed.contains("revoked"), "{listed}");
}

#[tokio::test]
async fn the_verifier_debug_output_and_arc_sharing_are_cheap_and_secret_free() {
    let app = TestApp::spawn().await;
    let verifier: ApiKeyVerifier = app.app.api_keys.clone();
    let shared = Arc::new(verifier.clone());
    let client = app.create_client("billing", None).await;
    let (_, key) = app.issue_key(client.id, None).await;
    assert!(
        shared
            .verify(key.expose_secret(), app.app.clock.now())
            .await
            .is_ok()
    );
    // Clones share one cache.
    let lookups = verifier.lookups();
    assert!(app.verify(key.expose_secret()).await.is_ok());
    assert_eq!(verifier.lookups(), lookups);
    assert!(!format!("{verifier:?}").contains(&key.expose_secret()[4..]));
}

#[tokio::test]
async fn the_background_task_listens_and_flushes_uses_on_shutdown() {
    let app = TestApp::spawn().await;
    let client = app.create_client("billing", None).await;
    let (key_id, key) = app.issue_key(client.id, None).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let background = app.app.api_keys.spawn_background(async move {
        let _ = stopped.await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.app.api_keys.is_listening() {
        assert!(Instant::now() < deadline, "the listener did not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.verify(key.expose_secret()).await.is_ok());
    let _ = stop.send(());
    background.await.expect("background task");
    let last_used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert!(last_used.is_some(), "uses were not flushed on shutdown");
}
