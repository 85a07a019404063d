//! The integration-test harness: a real samgate on a real socket against its own database.

pub mod browser;
pub mod db;
pub mod demo;
pub mod instance;
pub mod logs;
pub mod microsoft;
pub mod peers;
pub mod session;
pub mod snapshot;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ms_emulator::{Control, Emulator, Seed};
use samgate::app::App;
use samgate::clock::ManualClock;
use samgate::config::Config;
use samgate::domain::Actor;
use tokio::sync::oneshot;

pub use db::TestDb;
pub use demo::DemoPartner;

/// A running samgate for one test.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub address: String,
    /// The test's own database.
    pub db: TestDb,
    /// The clock the app reads; tests advance it.
    pub clock: Arc<ManualClock>,
    /// A client that does not follow redirects and keeps cookies.
    pub client: reqwest::Client,
    /// The app's pool (for assertions on stored rows).
    pub pool: sqlx::PgPool,
    /// The Microsoft emulator this app talks to.
    pub emulator: Emulator,
    /// The app itself (vault, identity client…), for tests that call library code directly.
    pub app: Arc<App>,
    /// The key-encryption key ring given to the app (`SAMGATE_KEKS`).
    pub keks: String,
    /// The demo partners consented so far, with their samgate partner ids.
    partners: Mutex<Vec<(DemoPartner, uuid::Uuid)>>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// Configuration of a test app before it starts.
pub struct TestAppBuilder {
    env: Vec<(String, String)>,
    seed: Vec<Box<dyn FnOnce(Seed) -> Seed + Send>>,
    database: Option<TestDb>,
    microsoft_over_tls: bool,
    consented: Vec<DemoPartner>,
}

impl TestApp {
    /// A builder for a test app.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            env: Vec::new(),
            seed: Vec::new(),
            database: None,
            microsoft_over_tls: false,
            consented: Vec::new(),
        }
    }

    /// A test app with default settings.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    /// `address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Waits until the API-key change notifications caused by the test's own setup (keys and
    /// clients it just created) have reached the verifier, so cache assertions start settled.
    pub async fn settle_key_changes(&self) {
        let quiet_for = std::time::Duration::from_millis(150);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut seen = self.app.api_keys.changes_seen();
        let mut since = std::time::Instant::now();
        while std::time::Instant::now() < deadline && since.elapsed() < quiet_for {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let now_seen = self.app.api_keys.changes_seen();
            if now_seen != seen {
                seen = now_seen;
                since = std::time::Instant::now();
            }
        }
    }

    /// Creates an API client (all partners when `partners` is `None`) and returns a new key.
    pub async fn api_key(
        &self,
        name: &str,
        partners: Option<Vec<uuid::Uuid>>,
        read_only: bool,
    ) -> String {
        let now = self.app.clock.now();
        let client = samgate::api_keys::create_client(
            &self.pool,
            samgate::api_keys::NewClient {
                name,
                description: None,
                partners,
                read_only,
                created_by: &Actor::parse("test"),
            },
            now,
        )
        .await
        .expect("create client");
        let (_, key) =
            samgate::api_keys::issue_key(&self.pool, client.id, None, &Actor::parse("test"), now)
                .await
                .expect("issue key");
        key.expose_secret().to_owned()
    }

    /// The samgate partner id of a demo partner consented in the builder or by
    /// [`consent_partner`](Self::consent_partner).
    pub fn partner_id(&self, partner: DemoPartner) -> uuid::Uuid {
        self.partners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(known, _)| *known == partner)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("{partner:?} was not consented"))
    }

    fn remember_partner(&self, partner: DemoPartner, id: uuid::Uuid) {
        self.partners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((partner, id));
    }

    /// The emulator's control handle.
    pub fn microsoft(&self) -> Control {
        self.emulator.control()
    }

    /// Creates an invitation through the library (what `samgate invitations create` does) and
    /// returns the path of its link.
    pub async fn invite(&self, partner_name: &str, expected_tenant: Option<&str>) -> String {
        self.invite_with(partner_name, expected_tenant, None).await
    }

    /// Like [`invite`](Self::invite), for a re-consent of `partner_id`.
    pub async fn invite_with(
        &self,
        partner_name: &str,
        expected_tenant: Option<&str>,
        partner_id: Option<uuid::Uuid>,
    ) -> String {
        let (_, token) = samgate::onboarding::create_invitation(
            &self.pool,
            &samgate::onboarding::NewInvitationRequest {
                partner_name,
                expected_tenant,
                login_hint: None,
                partner_id,
                ttl: std::time::Duration::from_secs(7 * 86_400),
                created_by: &Actor::parse("test"),
            },
            self.app.clock.now(),
        )
        .await
        .expect("create invitation");
        format!("/consent/{}", token.expose())
    }
}

impl TestAppBuilder {
    /// Sets a configuration variable as the environment would.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Serves the emulator over HTTPS (HTTP/2 or HTTP/1.1 by ALPN, as Microsoft's hosts do) with
    /// a throwaway CA that samgate trusts through `SAMGATE_EXTRA_CA_FILE`.
    pub fn microsoft_over_tls(mut self) -> Self {
        self.microsoft_over_tls = true;
        self
    }

    /// Changes the emulator's world before it starts (changes apply in the order given).
    pub fn with_seed(mut self, change: impl FnOnce(Seed) -> Seed + Send + 'static) -> Self {
        self.seed.push(Box::new(change));
        self
    }

    /// Gives `partner` `n` more customers in the emulator's world, each as `options(index)` says
    /// (`CustomerOptions::default()`: an active GDAP relationship, the app not consented); their
    /// ids are `Seed::generated_customer_id(partner.tenant(), index)`.
    pub fn with_customers(
        self,
        partner: DemoPartner,
        n: usize,
        options: impl Fn(usize) -> ms_emulator::CustomerOptions + Send + 'static,
    ) -> Self {
        self.with_seed(move |seed| seed.with_generated_customers(partner.tenant(), n, options))
    }

    /// Runs the app on `database` (e.g. one on the test's own cluster) instead of a fresh one on
    /// the shared test server.
    pub fn with_database(mut self, database: TestDb) -> Self {
        self.database = Some(database);
        self
    }

    /// Has `partner`'s admin consent once the app runs, as the first step of the scenario.
    pub fn with_consented(mut self, partner: DemoPartner) -> Self {
        self.consented.push(partner);
        self
    }

    /// Starts the emulator and samgate on `127.0.0.1:0`, then sets up the scenario.
    pub async fn spawn(self) -> TestApp {
        logs::install();
        let db = match self.database {
            Some(database) => database,
            None => TestDb::create().await,
        };
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("local addr"));
        let mut seed = Seed::demo(&format!("{address}/oauth/callback"));
        // Microsoft's consent screen shows the app's registered name: the CPV's name.
        for app in &mut seed.apps {
            app.display_name = "Northwind Control Panel".to_owned();
        }
        for change in self.seed {
            seed = change(seed);
        }
        let ca_file = self.microsoft_over_tls.then(|| {
            std::env::temp_dir().join(format!("samgate-test-ca-{}.pem", uuid::Uuid::new_v4()))
        });
        let emulator = Emulator::start_with(
            seed,
            ms_emulator::Options {
                tls: ca_file.is_some(),
                tls_cert_path: ca_file.clone(),
                ..ms_emulator::Options::default()
            },
        )
        .await
        .expect("start the Microsoft emulator");
        let keks = format!("1:{}", samgate::vault::generate_key());
        let mut env = vec![
            (
                "DATABASE_URL".to_owned(),
                "postgres://unused-see-pool".to_owned(),
            ),
            ("SAMGATE_PUBLIC_URL".to_owned(), format!("{address}/")),
            ("SAMGATE_AUTHORITY_URL".to_owned(), emulator.base_url()),
            ("SAMGATE_PARTNER_CENTER_URL".to_owned(), emulator.base_url()),
            ("SAMGATE_GRAPH_URL".to_owned(), emulator.graph_url()),
            (
                "SAMGATE_CLIENT_ID".to_owned(),
                ms_emulator::DEMO_CLIENT_ID.to_string(),
            ),
            (
                "SAMGATE_CLIENT_SECRET".to_owned(),
                ms_emulator::DEMO_CLIENT_SECRET.to_owned(),
            ),
            ("SAMGATE_KEKS".to_owned(), keks.clone()),
            (
                "SAMGATE_CPV_NAME".to_owned(),
                "Northwind Control Panel".to_owned(),
            ),
        ];
        if let Some(path) = &ca_file {
            env.push((
                "SAMGATE_EXTRA_CA_FILE".to_owned(),
                path.display().to_string(),
            ));
        }
        env.extend(self.env);
        let lookup = move |name: &str| {
            env.iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let config = Config::from_lookup(&lookup).expect("test configuration");
        let pool = samgate::db::connect_lazy(db.options(), 10);
        let clock = Arc::new(ManualClock::new());
        let app = Arc::new(App::build(config, pool.clone(), clock.clone()).expect("build app"));
        // The same launch as `samgate serve` (key-ring check, background tasks, draining).
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = samgate::server::Listeners {
            http: listener,
            metrics: None,
        };
        let launched = samgate::server::launch(app.clone(), listeners, async move {
            let _ = rx.await;
        });
        tokio::spawn(async move {
            if let Err(err) = launched.await {
                panic!("samgate did not start: {err:#}");
            }
        });
        // The key-change listener empties the key cache when it subscribes; wait for that, so
        // tests that count database lookups see a settled cache.
        let listening_deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !app.api_keys.is_listening() && std::time::Instant::now() < listening_deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true);
        if let Some(pem) = emulator.tls_certificate_pem() {
            // The test plays the partner admin's browser too, which visits Microsoft's pages.
            client = client.add_root_certificate(
                reqwest::Certificate::from_pem(pem.as_bytes()).expect("the emulator's CA"),
            );
        }
        let client = client.build().expect("client");
        let test_app = TestApp {
            address,
            db,
            clock,
            client,
            pool,
            emulator,
            app,
            keks,
            partners: Mutex::new(Vec::new()),
            shutdown: Some(tx),
        };
        for partner in self.consented {
            test_app.consent_partner(partner).await;
        }
        test_app
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A second samgate instance (same configuration, own pool and caches) on the test's database.
pub async fn second_instance(app: &TestApp) -> Arc<App> {
    let pool = samgate::db::connect_lazy(app.db.options(), 10);
    Arc::new(App::build(app.app.config.clone(), pool, app.clock.clone()).expect("second instance"))
}
