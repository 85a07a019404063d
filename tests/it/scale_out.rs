//! Several samgate processes on one database: the promises of horizontal scaling.

use std::time::{Duration, Instant};

use ms_emulator::{DEMO_CONTOSO, DEMO_CONTOSO_ADMIN};
use samgate::domain::Actor;

use crate::harness::TestApp;
use crate::harness::instance::Instance;

#[tokio::test]
async fn three_instances_share_tokens_keys_and_revocations_and_survive_losing_one() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    assert_eq!(
        app.consent_as(&invitation, DEMO_CONTOSO_ADMIN)
            .await
            .status(),
        200
    );
    let now = app.app.clock.now();
    let client = samgate::api_keys::create_client(
        &app.pool,
        samgate::api_keys::NewClient {
            name: "fleet",
            description: None,
            partners: None,
            read_only: false,
            created_by: &Actor::parse("test"),
        },
        now,
    )
    .await
    .expect("client");
    let (record, key) =
        samgate::api_keys::issue_key(&app.pool, client.id, None, &Actor::parse("test"), now)
            .await
            .expect("key");
    let key = key.expose_secret().to_owned();

    let mut instances = [
        Instance::start(&app, &[]).await,
        Instance::start(&app, &[]).await,
        Instance::start(&app, &[]).await,
    ];
    let path = format!("/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1");
    let http = reqwest::Client::new();

    // Cold caches everywhere, one burst across all three: Microsoft sees one redemption.
    let before = app.microsoft().token_calls("refresh_token");
    let burst = (0..60).map(|i| {
        let url = format!("{}{path}", instances[i % 3].url);
        let (http, key) = (http.clone(), key.clone());
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(burst)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("call"))
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        app.microsoft().token_calls("refresh_token") - before,
        1,
        "one redemption for the fleet"
    );

    // Traffic continues while one instance dies: only calls to the dead one fail.
    let traffic = {
        let urls: Vec<String> = instances
            .iter()
            .map(|i| format!("{}{path}", i.url))
            .collect();
        let (http, key) = (http.clone(), key.clone());
        tokio::spawn(async move {
            let mut results = Vec::new();
            for round in 0..30 {
                for (n, url) in urls.iter().enumerate() {
                    let status = http
                        .get(url)
                        .bearer_auth(&key)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .ok();
                    results.push((round, n, status));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            results
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    instances[2].kill();
    let results = traffic.await.expect("traffic");
    for (round, n, status) in &results {
        if *n != 2 {
            assert_eq!(*status, Some(200), "instance {n} failed in round {round}");
        }
    }

    // A revocation made through the library (one instance's database) reaches every instance.
    samgate::api_keys::revoke_key(
        &app.pool,
        record.id,
        &Actor::parse("test"),
        app.app.clock.now(),
    )
    .await
    .expect("revoke");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refused = [false, false];
    while Instant::now() < deadline && !refused.iter().all(|r| *r) {
        for (n, instance) in instances.iter().take(2).enumerate() {
            let status = http
                .get(format!("{}{path}", instance.url))
                .bearer_auth(&key)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            refused[n] = status == 401;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        refused,
        [true, true],
        "revocation must reach every live instance within 5 s"
    );
}

#[tokio::test]
async fn a_staff_session_made_on_one_instance_is_valid_on_another() {
    let app = TestApp::spawn().await;
    let (_, password) = samgate::staff::add_staff(
        &app.pool,
        samgate::staff::NewStaffRequest {
            email: "ops@northwind.example",
            display_name: None,
            role: samgate::staff::Role::Viewer,
            password: None,
            actor: &Actor::parse("test"),
        },
        app.app.clock.now(),
    )
    .await
    .expect("staff");
    // A second instance: its own process state, the same database.
    let other = crate::harness::second_instance(&app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other_url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = samgate::web::router(samgate::app::AppState(other));
    tokio::spawn(samgate::web::serve(
        router,
        listener,
        std::future::pending(),
    ));

    let form = app
        .get("/admin/login")
        .await
        .text()
        .await
        .expect("login page");
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token")
        .to_owned();
    use secrecy::ExposeSecret;
    let signed_in = app
        .client
        .post(app.url("/admin/login"))
        .header("origin", &app.address)
        .form(&[
            ("csrf", csrf.as_str()),
            ("return_to", "/admin"),
            ("email", "ops@northwind.example"),
            ("password", password.expose_secret()),
        ])
        .send()
        .await
        .expect("sign in");
    assert!(
        signed_in.status().is_redirection(),
        "{}",
        signed_in.status()
    );
    // The browser's cookie (same host, other port) is accepted by the other instance.
    let dashboard = app
        .client
        .get(format!("{other_url}/admin"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(dashboard.status(), 200);
    let page = dashboard.text().await.expect("page");
    assert!(
        !page.contains("name=\"password\""),
        "not sent back to the sign-in form"
    );
}
