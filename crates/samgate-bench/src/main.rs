//! `samgate-bench`: the few parts of `bench/run.sh` that a shell script cannot do well.
//!
//! * `vault`  — seal/open timing loop over samgate's vault (per-operation cost).
//! * `seed`   — many partners with grants sealed exactly as samgate seals them (the AEAD binds the
//!   partner's tenant id, so a copied sealed value would not open): the real consented refresh
//!   token is opened once and re-sealed for every seeded tenant. Optionally registers the first
//!   `--emulated` tenants in the Microsoft emulator (tenant, active GDAP relationship from the real
//!   partner, CPV app consent), so that refresh tokens really redeem there.
//! * `storm`  — N requests released at the same instant (a refresh storm), status histogram.
//! * `warm`   — one proxied Graph call per seeded tenant (fills samgate's access-token cache).
//! * `upstream` / `bare-proxy` — the proxy benchmark's fixed-answer Partner Center stand-in and
//!   the bare hyper reverse proxy samgate is compared with ([`http`]).
//! * `links`  — cost of pointing paging links at samgate (`samgate::proxy::links::rewrite`) on
//!   Graph and Partner Center pages of typical sizes, and on a body without links.
//!
//! Output is one JSON object per command on stdout, for the script to pick up.

mod http;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use samgate::onboarding::REFRESH_TOKEN_PURPOSE;
use samgate::vault::{KeyRing, SealContext, Vault};
use secrecy::SecretString;
use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "samgate-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal/open timing loop (SAMGATE_KEKS from the environment, or a throwaway key).
    Vault {
        /// Operations per measured round.
        #[arg(long, default_value_t = 20_000)]
        iterations: u32,
        /// Measured rounds (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Link-rewrite timing loop over synthetic Graph and Partner Center pages.
    Links {
        /// Rewrites per measured round.
        #[arg(long, default_value_t = 2_000)]
        iterations: u32,
        /// Measured rounds (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Seeds partners and grants (DATABASE_URL and SAMGATE_KEKS from the environment).
    Seed {
        /// Partners to add.
        #[arg(long, default_value_t = 100_000)]
        partners: u32,
        /// The first this-many seeded tenants are registered in the emulator.
        #[arg(long, default_value_t = 0)]
        emulated: u32,
        /// Emulator base URL (with --emulated).
        #[arg(long)]
        emulator: Option<String>,
        /// The consented partner whose refresh token is re-sealed for the seeded tenants.
        #[arg(long)]
        source_tenant: Uuid,
        /// The CPV app id (emulator consents).
        #[arg(long)]
        client_id: Uuid,
        /// Where to write the emulated tenant ids, one per line.
        #[arg(long)]
        tenants_out: std::path::PathBuf,
    },
    /// Fires N identical GETs at once (released together) and counts statuses.
    Storm {
        /// The URL.
        #[arg(long)]
        url: String,
        /// The API key (Authorization: Bearer).
        #[arg(long, env = "BENCH_API_KEY")]
        key: String,
        /// Concurrent requests.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
    },
    /// A fixed-answer Partner Center stand-in (every request: one customer page, 200).
    Upstream {
        /// Port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        /// Serve HTTPS (ALPN h2, then http/1.1) with a throwaway CA, whose PEM is written here.
        #[arg(long)]
        tls_ca_out: Option<std::path::PathBuf>,
    },
    /// A bare reverse proxy to `--upstream` that sets a fixed bearer token and nothing else.
    BareProxy {
        /// Port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        /// The upstream, http://host:port.
        #[arg(long)]
        upstream: String,
        /// The bearer token to send (BENCH_TOKEN).
        #[arg(long, env = "BENCH_TOKEN")]
        token: String,
    },
    /// GET {base}/api/v1/partners/{tenant}/graph/v1.0/organization for every tenant in a file.
    Warm {
        /// samgate base URL.
        #[arg(long)]
        base: String,
        /// The API key.
        #[arg(long, env = "BENCH_API_KEY")]
        key: String,
        /// File of tenant ids.
        #[arg(long)]
        tenants: std::path::PathBuf,
        /// How many of them.
        #[arg(long)]
        limit: Option<usize>,
        /// Calls in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Vault { iterations, rounds } => vault(iterations, rounds),
        Command::Links { iterations, rounds } => links(iterations, rounds),
        Command::Seed {
            partners,
            emulated,
            emulator,
            source_tenant,
            client_id,
            tenants_out,
        } => {
            seed(
                partners,
                emulated,
                emulator,
                source_tenant,
                client_id,
                &tenants_out,
            )
            .await
        }
        Command::Upstream { port, tls_ca_out } => http::upstream(port, tls_ca_out.as_deref()).await,
        Command::BareProxy {
            port,
            upstream,
            token,
        } => http::bare_proxy(port, upstream, token).await,
        Command::Storm { url, key, requests } => storm(&url, &key, requests).await,
        Command::Warm {
            base,
            key,
            tenants,
            limit,
            concurrency,
        } => warm(&base, &key, &tenants, limit, concurrency).await,
    }
}

fn vault_from_env() -> anyhow::Result<Vault> {
    let keks = std::env::var("SAMGATE_KEKS")
        .unwrap_or_else(|_| format!("1:{}", samgate::vault::generate_key()));
    let ring = KeyRing::parse(&keks, std::env::var("SAMGATE_ACTIVE_KEK").ok().as_deref())
        .map_err(|e| anyhow::anyhow!("SAMGATE_KEKS: {e}"))?;
    Ok(Vault::new(ring))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn vault(iterations: u32, rounds: u32) -> anyhow::Result<()> {
    let vault = vault_from_env()?;
    let row = Uuid::new_v4().to_string();
    let ctx = SealContext::new(REFRESH_TOKEN_PURPOSE, &row);
    let mut results = serde_json::Map::new();
    // A Microsoft refresh token is ~1–1.5 KB; an access token (JWT) ~1.5–2.5 KB.
    for (label, size) in [("1KiB", 1024usize), ("4KiB", 4096)] {
        let plaintext = vec![b'r'; size];
        let sealed = vault.seal(&plaintext, &ctx)?;
        // Warm-up.
        for _ in 0..iterations / 10 {
            std::hint::black_box(vault.seal(&plaintext, &ctx)?);
            std::hint::black_box(vault.open(&sealed, &ctx)?);
        }
        let (mut seal_ns, mut open_ns) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let started = Instant::now();
            for _ in 0..iterations {
                std::hint::black_box(vault.seal(std::hint::black_box(&plaintext), &ctx)?);
            }
            seal_ns.push(started.elapsed().as_nanos() as f64 / f64::from(iterations));
            let started = Instant::now();
            for _ in 0..iterations {
                std::hint::black_box(vault.open(std::hint::black_box(&sealed), &ctx)?);
            }
            open_ns.push(started.elapsed().as_nanos() as f64 / f64::from(iterations));
        }
        results.insert(
            label.to_owned(),
            json!({
                "seal_ns": median(seal_ns).round(),
                "open_ns": median(open_ns).round(),
                "sealed_bytes": sealed.len(),
            }),
        );
    }
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}

/// A Graph users page of `users` users with a next link, and a Partner Center customers page.
fn sample_pages(users: usize) -> (Vec<u8>, Vec<u8>) {
    let value: Vec<serde_json::Value> = (0..users)
        .map(|i| {
            json!({
                "businessPhones": [], "displayName": format!("User {i}"), "givenName": "User",
                "jobTitle": null, "mail": format!("user{i}@contoso.example"), "mobilePhone": null,
                "officeLocation": null, "preferredLanguage": "en-US", "surname": format!("{i}"),
                "userPrincipalName": format!("user{i}@contoso.example"), "id": Uuid::new_v4(),
            })
        })
        .collect();
    let graph = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$top=999&$skiptoken=RFNwdAIAAQAAACpVc2VyXzY",
        "value": value,
    });
    let items: Vec<serde_json::Value> = (0..users.min(500))
        .map(|i| {
            json!({
                "id": Uuid::new_v4(),
                "companyProfile": {"companyName": format!("Customer {i}"), "domain": format!("c{i}.onmicrosoft.com")},
                "links": {"self": {"uri": format!("/customers/{i}"), "method": "GET", "headers": []}},
                "attributes": {"objectType": "Customer"},
            })
        })
        .collect();
    let pc = json!({
        "totalCount": items.len(), "items": items,
        "links": {"next": {"uri": "/customers?size=500&seekOperation=Next", "method": "GET",
            "headers": [{"key": "MS-ContinuationToken", "value": "W3sidG9rZW4iOiIrUklEOn4xIn1d"}]}},
        "attributes": {"objectType": "Collection"},
    });
    (
        serde_json::to_vec(&graph).unwrap_or_default(),
        serde_json::to_vec(&pc).unwrap_or_default(),
    )
}

fn links(iterations: u32, rounds: u32) -> anyhow::Result<()> {
    use samgate::proxy::Upstream;
    use samgate::proxy::links::{LinkTarget, rewrite};
    let graph_base = url::Url::parse("https://graph.microsoft.com")?;
    let pc_base = url::Url::parse("https://api.partnercenter.microsoft.com")?;
    let graph_route = "https://samgate.example/api/v1/partners/p/customers/c/graph";
    let pc_route = "https://samgate.example/api/v1/partners/p/partner-center";
    let graph_target = LinkTarget {
        upstream: Upstream::Graph,
        upstream_base: &graph_base,
        route: graph_route,
    };
    let pc_target = LinkTarget {
        upstream: Upstream::PartnerCenter,
        upstream_base: &pc_base,
        route: pc_route,
    };
    let mut results = serde_json::Map::new();
    for users in [1usize, 100, 999] {
        let (graph, pc) = sample_pages(users);
        let no_link = br#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#organization","value":[{"id":"x"}]}"#.to_vec();
        for (label, body, target) in [
            (format!("graph_{users}_users"), &graph, &graph_target),
            (format!("pc_{}_customers", users.min(500)), &pc, &pc_target),
            (
                format!("graph_without_link_{users}"),
                &no_link,
                &graph_target,
            ),
        ] {
            if results.contains_key(&label) {
                continue;
            }
            let iterations = if body.len() > 100_000 {
                iterations / 20
            } else {
                iterations
            }
            .max(1);
            let mut ns = Vec::new();
            for _ in 0..rounds {
                let started = Instant::now();
                for _ in 0..iterations {
                    std::hint::black_box(rewrite(std::hint::black_box(body), target));
                }
                ns.push(started.elapsed().as_nanos() as f64 / f64::from(iterations));
            }
            results.insert(
                label,
                json!({ "bytes": body.len(), "ns": median(ns).round(), "rewritten": rewrite(body, target).is_some() }),
            );
        }
    }
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}

/// Deterministic, readable names: "<adjective> <noun> <n>".
fn partner_name(i: u32) -> String {
    const ADJ: [&str; 16] = [
        "Blue", "Northern", "Rapid", "Silver", "Bright", "Quiet", "Summit", "Harbor", "Cedar",
        "Granite", "Lumen", "Vertex", "Atlas", "Nimbus", "Copper", "Delta",
    ];
    const NOUN: [&str; 16] = [
        "Systems",
        "Cloud",
        "IT",
        "Networks",
        "Solutions",
        "Partners",
        "Digital",
        "Consulting",
        "Tech",
        "Services",
        "Labs",
        "Group",
        "Works",
        "Data",
        "Logic",
        "Computing",
    ];
    // Spread names so the (display_name, id) order is not the insertion order.
    let h = i.wrapping_mul(2_654_435_761);
    format!(
        "{} {} {:06}",
        ADJ[(h >> 28) as usize % 16],
        NOUN[(h >> 24) as usize % 16],
        i
    )
}

async fn seed(
    partners: u32,
    emulated: u32,
    emulator: Option<String>,
    source_tenant: Uuid,
    client_id: Uuid,
    tenants_out: &std::path::Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is not set")?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?;
    let vault = vault_from_env()?;
    let source = sqlx::query(
        "SELECT g.partner_id, g.sealed_refresh_token, g.kek_id FROM grants g JOIN partners p ON p.id = g.partner_id
         WHERE p.tenant_id = $1",
    )
    .bind(source_tenant)
    .fetch_one(&pool)
    .await
    .context("the source partner has no grant")?;
    let source_partner: Uuid = source.get(0);
    let sealed: Vec<u8> = source.get(1);
    let row = source_tenant.to_string();
    let refresh_token: SecretString = vault
        .open_string(&sealed, &SealContext::new(REFRESH_TOKEN_PURPOSE, &row))
        .map_err(|e| anyhow::anyhow!("cannot open the source grant: {e}"))?;

    // Tenant ids: the emulated ones first (so `--emulated` picks a prefix).
    let tenants: Vec<Uuid> = (0..partners).map(|_| Uuid::new_v4()).collect();
    let emulated_tenants = &tenants[..emulated.min(partners) as usize];
    std::fs::write(
        tenants_out,
        emulated_tenants
            .iter()
            .map(|t| format!("{t}\n"))
            .collect::<String>(),
    )?;

    // 1. Emulator: tenant, active GDAP relationship from the source partner, app consent.
    let mut emulator_secs = 0.0;
    if !emulated_tenants.is_empty() {
        let base = emulator.context("--emulated needs --emulator")?;
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        let failures = futures_util::stream::iter(emulated_tenants.iter().copied().enumerate())
            .map(|(i, tenant)| {
                let http = http.clone();
                let base = base.clone();
                async move {
                    let calls = [
                        (
                            "tenants",
                            json!({"id": tenant, "display_name": partner_name(i as u32),
                                   "default_domain": format!("bench{i}.onmicrosoft.com")}),
                        ),
                        (
                            "relationships",
                            json!({"partner": source_tenant, "customer": tenant, "status": "active"}),
                        ),
                        ("consents", json!({"tenant": tenant, "client_id": client_id})),
                    ];
                    for (path, body) in calls {
                        let ok = http
                            .post(format!("{base}/_emulator/{path}"))
                            .json(&body)
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        if !ok {
                            return 1u32;
                        }
                    }
                    0
                }
            })
            .buffer_unordered(16)
            .fold(0u32, |a, b| async move { a + b })
            .await;
        anyhow::ensure!(failures == 0, "{failures} emulator registrations failed");
        emulator_secs = t0.elapsed().as_secs_f64();
    }

    // 2. samgate's database: partners and grants, in chunks, copying the source grant's facts.
    let t0 = Instant::now();
    let now = time::OffsetDateTime::now_utc();
    const CHUNK: usize = 5_000;
    for (c, chunk) in tenants.chunks(CHUNK).enumerate() {
        let mut ids = Vec::with_capacity(chunk.len());
        let mut names = Vec::with_capacity(chunk.len());
        let mut domains = Vec::with_capacity(chunk.len());
        let mut statuses = Vec::with_capacity(chunk.len());
        let mut sealed_tokens = Vec::with_capacity(chunk.len());
        for (j, tenant) in chunk.iter().enumerate() {
            let i = (c * CHUNK + j) as u32;
            ids.push(Uuid::now_v7());
            names.push(partner_name(i));
            domains.push(format!("bench{i}.onmicrosoft.com"));
            // Emulated tenants stay healthy (they are refreshed); the rest get a realistic mix.
            let status = match (i < emulated, i % 100) {
                (true, _) => "healthy",
                (false, 0..=2) => "needs_consent",
                (false, 3) => "mfa_required",
                (false, 4) => "degraded",
                _ => "healthy",
            };
            statuses.push(status.to_owned());
            let row = tenant.to_string();
            sealed_tokens.push(
                vault
                    .seal_str(
                        &refresh_token,
                        &SealContext::new(REFRESH_TOKEN_PURPOSE, &row),
                    )
                    .map_err(|e| anyhow::anyhow!("seal: {e}"))?
                    .bytes,
            );
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO partners (id, tenant_id, display_name, domain, status, status_changed_at, created_at)
             SELECT * , $6::timestamptz, $6::timestamptz FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(&ids)
        .bind(chunk)
        .bind(&names)
        .bind(&domains)
        .bind(&statuses)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO grants (partner_id, sealed_refresh_token, kek_id, version, app_id, cloud, consented_by_oid,
                                 consented_by_name, consented_by_upn, consented_at, mfa_evidence, refreshed_at)
             SELECT n.id, n.sealed, s.kek_id, 1, s.app_id, s.cloud, s.consented_by_oid, s.consented_by_name,
                    s.consented_by_upn, s.consented_at, s.mfa_evidence, $4
             FROM UNNEST($1::uuid[], $2::bytea[]) AS n(id, sealed), grants s WHERE s.partner_id = $3",
        )
        .bind(&ids)
        .bind(&sealed_tokens)
        .bind(source_partner)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let db_secs = t0.elapsed().as_secs_f64();
    sqlx::query("ANALYZE partners").execute(&pool).await?;
    sqlx::query("ANALYZE grants").execute(&pool).await?;
    println!(
        "{}",
        json!({
            "partners": partners,
            "emulated": emulated_tenants.len(),
            "emulator_registration_secs": (emulator_secs * 100.0).round() / 100.0,
            "db_insert_secs": (db_secs * 100.0).round() / 100.0,
            "total_secs": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        })
    );
    Ok(())
}

fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(120))
        .build()?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[idx] * 10.0).round() / 10.0
}

async fn storm(url: &str, key: &str, requests: usize) -> anyhow::Result<()> {
    let http = client(requests)?;
    let barrier = Arc::new(tokio::sync::Barrier::new(requests + 1));
    let mut tasks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let http = http.clone();
        let barrier = barrier.clone();
        let request = http.get(url).bearer_auth(key).build()?;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let t0 = Instant::now();
            let status = match http.execute(request).await {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            (status, t0.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let t0 = Instant::now();
    barrier.wait().await;
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        let (status, ms) = task.await?;
        *statuses.entry(status).or_default() += 1;
        latencies.push(ms);
    }
    let wall = t0.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "requests": requests,
            "statuses": statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "wall_ms": (wall * 1000.0).round(),
            "p50_ms": percentile(&latencies, 0.5),
            "p99_ms": percentile(&latencies, 0.99),
            "max_ms": percentile(&latencies, 1.0),
        })
    );
    Ok(())
}

async fn warm(
    base: &str,
    key: &str,
    tenants: &std::path::Path,
    limit: Option<usize>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(tenants)?;
    let tenants: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty())
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let http = client(concurrency)?;
    let t0 = Instant::now();
    let statuses = futures_util::stream::iter(tenants.iter())
        .map(|tenant| {
            let http = http.clone();
            let url = format!("{base}/api/v1/partners/{tenant}/graph/v1.0/organization");
            async move {
                match http.get(url).bearer_auth(key).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                }
            }
        })
        .buffer_unordered(concurrency)
        .fold(BTreeMap::<u16, u32>::new(), |mut m, s| async move {
            *m.entry(s).or_default() += 1;
            m
        })
        .await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "calls": tenants.len(),
            "statuses": statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "secs": (secs * 100.0).round() / 100.0,
            "per_sec": (tenants.len() as f64 / secs).round(),
        })
    );
    Ok(())
}
