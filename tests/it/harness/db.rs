//! A fresh, migrated database for every test.
//!
//! With `DATABASE_URL` set, databases are made on that server. Otherwise one private cluster per
//! test run lives under `target/tmp/samgate-test-pg`, shared by concurrent test processes: a boot
//! lock serialises start-up, every process holds a shared "users" lock while it runs, and a watchdog
//! stops the cluster once no process holds it any more.

use std::fs::File;
use std::process::{Command, Stdio};
use std::str::FromStr;

use samgate::db;
use samgate::local_pg::{LocalCluster, ServerBinaries};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::OnceCell;

struct Server {
    admin: PgConnectOptions,
    template: String,
    cluster: Option<LocalCluster>,
    _users_lock: Option<File>,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for migration in db::MIGRATOR.iter() {
        hasher.update(migration.version.to_le_bytes());
        hasher.update(&*migration.checksum);
    }
    let digest = format!("{:x}", hasher.finalize());
    format!("samgate_tpl_{}", &digest[..16])
}

async fn boot() -> Server {
    let template = template_name();
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let admin =
            PgConnectOptions::from_str(&url).expect("DATABASE_URL must be a PostgreSQL URL");
        let pool = db::connect(admin.clone(), 1)
            .await
            .expect("connect to DATABASE_URL");
        // Concurrent test processes on a shared server build the template once.
        sqlx::query("SELECT pg_advisory_lock(7342001)")
            .execute(&pool)
            .await
            .expect("advisory lock");
        build_template(&admin, &pool, &template).await;
        pool.close().await;
        return Server {
            admin,
            template,
            cluster: None,
            _users_lock: None,
        };
    }
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("samgate-test-pg");
    let cluster = tokio::task::spawn_blocking(move || {
        let binaries = ServerBinaries::discover().unwrap_or_else(|e| panic!("{e}"));
        let cluster = LocalCluster::new(root, binaries).unwrap_or_else(|e| panic!("{e}"));
        let boot_lock = cluster.lock("boot.lock", true).expect("boot lock");
        cluster
            .ensure_initialized()
            .unwrap_or_else(|e| panic!("{e}"));
        if !cluster.is_running() {
            cluster.start(false).unwrap_or_else(|e| panic!("{e}"));
            spawn_watchdog(&cluster);
        }
        let users_lock = cluster.lock("users.lock", false).expect("users lock");
        (cluster, boot_lock, users_lock)
    })
    .await
    .expect("cluster start");
    let (cluster, boot_lock, users_lock) = cluster;
    let admin = cluster.connect_options("postgres");
    let pool = db::connect(admin.clone(), 1)
        .await
        .expect("connect to the test cluster");
    build_template(&admin, &pool, &template).await;
    pool.close().await;
    drop(boot_lock);
    Server {
        admin,
        template,
        cluster: Some(cluster),
        _users_lock: Some(users_lock),
    }
}

/// Stops the cluster once no test process holds the users lock (checked every second under the
/// boot lock, so a process that is starting cannot race the stop).
fn spawn_watchdog(cluster: &LocalCluster) {
    let has_flock = Command::new("sh")
        .args(["-c", "command -v flock"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_flock {
        return; // the cluster stays up and is reused by the next run
    }
    let root = cluster.root().display().to_string();
    let script = format!(
        "sleep 2; while :; do \
           flock -x '{root}/boot.lock' sh -c \"flock -n -x '{root}/users.lock' {stop} >/dev/null 2>&1\" && exit 0; \
           sleep 1; \
         done",
        stop = cluster.stop_command_line().replace('"', "\\\""),
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

async fn build_template(admin: &PgConnectOptions, pool: &PgPool, template: &str) {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(template)
        .fetch_optional(pool)
        .await
        .expect("look up template");
    if exists.is_some() {
        return;
    }
    let building = format!("{template}_building");
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {}",
        db::quote_identifier(&building)
    ))
    .execute(pool)
    .await
    .expect("drop half-built template");
    sqlx::query(&format!(
        "CREATE DATABASE {}",
        db::quote_identifier(&building)
    ))
    .execute(pool)
    .await
    .expect("create template");
    let template_pool = db::connect(admin.clone().database(&building), 1)
        .await
        .expect("connect to template");
    db::migrate(&template_pool).await.expect("migrate template");
    template_pool.close().await;
    sqlx::query(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        db::quote_identifier(&building),
        db::quote_identifier(template)
    ))
    .execute(pool)
    .await
    .expect("publish template");
}

/// A database of one test; dropped when the value is dropped (unless the test runs its server).
pub struct TestDb {
    name: String,
    admin: PgConnectOptions,
    options: PgConnectOptions,
    /// The URL of a database on a server the test runs itself, which the test also removes.
    own_server_url: Option<String>,
}

impl TestDb {
    /// A new database cloned from the migrated template.
    pub async fn create() -> Self {
        let server = SERVER.get_or_init(boot).await;
        let name = format!("samgate_test_{}", uuid::Uuid::new_v4().simple());
        let admin = db::connect(server.admin.clone(), 1)
            .await
            .expect("admin connection");
        sqlx::query(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            db::quote_identifier(&name),
            db::quote_identifier(&server.template)
        ))
        .execute(&admin)
        .await
        .expect("create test database");
        admin.close().await;
        Self {
            options: server.admin.clone().database(&name),
            admin: server.admin.clone(),
            name,
            own_server_url: None,
        }
    }

    /// A migrated database `name` on a server the test runs itself (its own cluster, reached with
    /// `admin` and `url`); dropping the value leaves it to the test, which removes the server.
    pub fn on_own_server(admin: PgConnectOptions, name: &str, url: String) -> Self {
        Self {
            options: admin.clone().database(name),
            admin,
            name: name.to_owned(),
            own_server_url: Some(url),
        }
    }

    /// Connection options for this database.
    pub fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for command-line tools (`pg_dump`); only for the private cluster.
    pub fn url(&self) -> String {
        if let Some(url) = &self.own_server_url {
            return url.clone();
        }
        match SERVER.get().and_then(|s| s.cluster.as_ref()) {
            Some(cluster) => cluster.database_url(&self.name),
            None => {
                let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
                let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
                url.set_path(&self.name);
                url.to_string()
            }
        }
    }

    /// Refuses new connections and ends existing ones: the database is "down" for samgate.
    pub async fn take_offline(&self) {
        self.admin_exec(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            db::quote_identifier(&self.name)
        ))
        .await;
        self.admin_exec(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ))
        .await;
    }

    /// Lets connections in again.
    pub async fn bring_online(&self) {
        self.admin_exec(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db::quote_identifier(&self.name)
        ))
        .await;
    }

    async fn admin_exec(&self, sql: &str) {
        let admin = db::connect(self.admin.clone(), 1)
            .await
            .expect("admin connection");
        sqlx::query(sql).execute(&admin).await.expect(sql);
        admin.close().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.own_server_url.is_some() {
            return;
        }
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a thread with its own runtime avoids nesting.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(pool) = db::connect(admin, 1).await {
                    let _ = sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        db::quote_identifier(&name)
                    ))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}
