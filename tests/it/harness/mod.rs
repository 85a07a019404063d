//! The integration-test harness: a real samgate on a real socket against its own database.

pub mod db;
pub mod logs;

use std::net::SocketAddr;
use std::sync::Arc;

use samgate::app::{App, AppState};
use samgate::clock::ManualClock;
use samgate::config::Config;
use tokio::sync::oneshot;

pub use db::TestDb;

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
    shutdown: Option<oneshot::Sender<()>>,
}

/// Configuration of a test app before it starts.
pub struct TestAppBuilder {
    env: Vec<(String, String)>,
}

impl TestApp {
    /// A builder for a test app.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder { env: Vec::new() }
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
        self.client.get(self.url(path)).send().await.expect("request")
    }
}

impl TestAppBuilder {
    /// Sets a configuration variable as the environment would.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts samgate on `127.0.0.1:0`.
    pub async fn spawn(self) -> TestApp {
        logs::install();
        let db = TestDb::create().await;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("local addr"));
        let mut env = vec![
            ("DATABASE_URL".to_owned(), "postgres://unused-see-pool".to_owned()),
            ("SAMGATE_PUBLIC_URL".to_owned(), format!("{address}/")),
        ];
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
        let app = App {
            config,
            pool: pool.clone(),
            clock: clock.clone(),
        };
        let router = samgate::web::router(AppState(Arc::new(app)));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(samgate::web::serve(router, listener, async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("client");
        TestApp {
            address,
            db,
            clock,
            client,
            pool,
            shutdown: Some(tx),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
