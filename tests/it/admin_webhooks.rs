//! Webhooks in the admin UI: an endpoint added with its secret shown once (never stored or logged
//! in plaintext), deliveries of real events with replay, disable and enable, rotation, the role
//! and CSRF checks of every change, 404s for bad ids, inline form errors, and the pages in a real
//! browser at phone and laptop widths.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use samgate::domain::Actor;
use samgate::staff::Role;
use uuid::Uuid;

use crate::admin::{count, field_value, location, signed_in};
use crate::admin_feedback::{assert_fits, flash};
use crate::harness::DemoPartner::{Contoso, Fabrikam};
use crate::harness::TestApp;
use crate::harness::session::AdminClient;
use crate::lifecycle::quiet_app;
use crate::webhooks::{Receiver, deliver, header, verifies};

/// Counts the audit events of webhook changes.
const WEBHOOK_AUDIT: &str = "SELECT count(*) FROM audit_events WHERE action LIKE 'webhook.%'";

/// How many replays were audited.
async fn replays(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT count(*) FROM audit_events WHERE action = 'webhook.replayed'",
    )
    .await
}

/// What adding an endpoint through the form showed.
struct Added {
    id: Uuid,
    secret: String,
    page: String,
}

/// Adds an endpoint through the form as `browser`; the response must be the secret page.
async fn add_in_ui(browser: &AdminClient, url: &str, events: &[&str]) -> Added {
    let mut form = vec![("url", url), ("description", "Billing panel")];
    form.extend(events.iter().map(|e| ("events", *e)));
    let response = browser.submit("/admin/webhooks", &form).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("page");
    let secret = field_value(&page, "id=\"webhook-secret\"").expect("the secret is shown");
    let link = crate::admin::link_href(&page, "id=\"endpoint-link\"").expect("endpoint link");
    let id = link
        .strip_prefix("/admin/webhooks/")
        .and_then(|id| Uuid::parse_str(id).ok())
        .expect("endpoint id in the link");
    Added { id, secret, page }
}

async fn text(browser: &AdminClient, path: &str) -> String {
    let response = browser.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.text().await.expect("page")
}

/// Queues an `invitation.expired` event for every enabled endpoint.
pub(crate) async fn queue_event(app: &TestApp) {
    samgate::webhooks::enqueue(
        &app.pool,
        samgate::webhooks::EventType::InvitationExpired,
        None,
        serde_json::json!({}),
        app.app.clock.now(),
    )
    .await
    .expect("enqueue");
}

/// The newest delivery id of an endpoint.
pub(crate) async fn newest_delivery(app: &TestApp, endpoint: Uuid) -> i64 {
    sqlx::query_scalar("SELECT max(id) FROM webhook_deliveries WHERE endpoint_id = $1")
        .bind(endpoint)
        .fetch_one(&app.pool)
        .await
        .expect("delivery")
}

/// Asserts `text` appears nowhere in the captured log lines.
fn assert_not_logged(text: &str, what: &str) {
    let logs = crate::harness::logs::captured();
    if let Some(at) = logs.find(text) {
        let start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
        panic!("the {what} reached the logs: {}", &logs[start..end]);
    }
}

#[tokio::test]
async fn an_added_webhook_shows_its_secret_once_and_never_stores_or_logs_it_in_plaintext() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let empty = text(&admin, "/admin/webhooks").await;
    assert!(empty.contains("id=\"webhooks-empty\""), "{empty}");
    for event in samgate::webhooks::EventType::ALL {
        assert!(
            empty.contains(event.as_str()),
            "the empty state names {event:?}"
        );
    }

    let added = add_in_ui(
        &admin,
        "https://hooks.example.com/samgate",
        &["partner.needs_consent", "partner.consented"],
    )
    .await;
    assert!(added.secret.starts_with("whsec_"), "{}", added.secret);
    assert!(added.page.contains("shown only now"), "{}", added.page);
    assert!(added.page.contains("data-copy=\"webhook-secret\""));

    let list = text(&admin, "/admin/webhooks").await;
    assert!(
        !list.contains(&added.secret),
        "a second GET does not show it"
    );
    let row = &list[list
        .find(&format!("id=\"endpoint-{}\"", added.id))
        .expect("row")..];
    assert!(row.contains("https://hooks.example.com/samgate"));
    assert!(row.contains("Billing panel"));
    assert!(row.contains("partner.consented") && row.contains("partner.needs_consent"));
    assert!(row.contains("enabled"));
    let detail = text(&admin, &format!("/admin/webhooks/{}", added.id)).await;
    assert!(!detail.contains(&added.secret));

    // Nothing in the database holds the secret's text or its key bytes in any usual encoding.
    let key = STANDARD
        .decode(added.secret.trim_start_matches("whsec_"))
        .expect("base64 key");
    let dump = crate::vault_at_rest::pg_dump(&app);
    assert!(
        dump.contains("https://hooks.example.com/samgate"),
        "the endpoint is dumped"
    );
    for (what, needle) in [
        ("secret", added.secret.clone()),
        ("secret's base64", added.secret["whsec_".len()..].to_owned()),
        ("key as hex", crate::vault_at_rest::hex(&key)),
        ("key as base64url", URL_SAFE_NO_PAD.encode(&key)),
    ] {
        assert!(!dump.contains(&needle), "the dump holds the {what}");
    }
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_events WHERE action = 'webhook.endpoint_added' AND actor LIKE 'staff:%'"
        )
        .await,
        1
    );
    assert_not_logged(&added.secret, "webhook secret");
    assert_not_logged(&added.secret["whsec_".len()..], "webhook secret's base64");
}

#[tokio::test]
async fn a_real_event_is_delivered_shown_as_delivered_and_a_replay_sends_it_again_with_its_webhook_id()
 {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let receiver = Receiver::start().await;
    let added = add_in_ui(&admin, &receiver.url(), &["partner.consented"]).await;
    app.consent_partner(Contoso).await;

    let queued = text(&admin, "/admin/webhooks").await;
    let row = &queued[queued
        .find(&format!("id=\"endpoint-{}\"", added.id))
        .expect("row")..];
    assert!(row.contains("1 pending"), "{row}");

    assert_eq!(deliver(&app).await.delivered, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(
        verifies(&added.secret, &received[0]),
        "signed with the shown secret"
    );

    let delivery = newest_delivery(&app, added.id).await;
    let path = format!("/admin/webhooks/{}", added.id);
    let page = text(&admin, &path).await;
    let row = &page[page
        .find(&format!("id=\"delivery-{delivery}\""))
        .expect("row")..];
    let row = &row[..row.find("</tr>").expect("row end")];
    assert!(row.contains("delivered"), "{row}");
    assert!(row.contains("partner.consented"), "{row}");
    assert!(row.contains("204"), "{row}");
    assert!(row.contains(" UTC"), "{row}");

    let replay = format!("/admin/webhooks/{}/deliveries/{delivery}/replay", added.id);
    assert!(
        page.contains(&format!("action=\"{replay}\"")),
        "a Replay button"
    );
    let response = admin.submit(&replay, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), path);
    let page = text(&admin, &path).await;
    assert!(
        flash(&page).is_some_and(|m| m.contains("queued again")),
        "{page}"
    );
    let row = &page[page
        .find(&format!("id=\"delivery-{delivery}\""))
        .expect("row")..];
    assert!(
        row[..row.find("</tr>").expect("row end")].contains("pending"),
        "{row}"
    );
    let filtered = text(&admin, &format!("{path}?status=delivered")).await;
    assert!(!filtered.contains(&format!("id=\"delivery-{delivery}\"")));
    let filtered = text(&admin, &format!("{path}?status=pending")).await;
    assert!(filtered.contains(&format!("id=\"delivery-{delivery}\"")));
    assert_eq!(
        admin.get(&format!("{path}?status=lost")).await.status(),
        StatusCode::BAD_REQUEST
    );

    assert_eq!(deliver(&app).await.delivered, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        header(&received[0], "webhook-id"),
        header(&received[1], "webhook-id")
    );
    assert_eq!(replays(&app).await, 1);
}

#[tokio::test]
async fn a_disabled_endpoint_gets_no_deliveries_until_it_is_enabled_again() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let receiver = Receiver::start().await;
    let added = add_in_ui(&admin, &receiver.url(), &[]).await;
    let path = format!("/admin/webhooks/{}", added.id);

    let response = admin.submit(&format!("{path}/disable"), &[]).await;
    assert_eq!(location(&response), path);
    let page = text(&admin, &path).await;
    assert!(
        flash(&page).is_some_and(|m| m.starts_with("Endpoint disabled")),
        "{page}"
    );
    let list = text(&admin, "/admin/webhooks").await;
    let row = &list[list
        .find(&format!("id=\"endpoint-{}\"", added.id))
        .expect("row")..];
    assert!(row.contains("disabled"), "{row}");
    admin.submit(&format!("{path}/disable"), &[]).await;
    let page = text(&admin, &path).await;
    assert!(
        flash(&page).is_some_and(|m| m.contains("already disabled")),
        "{page}"
    );

    app.consent_partner(Contoso).await;
    assert_eq!(deliver(&app).await, Default::default());
    assert!(
        receiver.received().is_empty(),
        "nothing sent while disabled"
    );

    let response = admin.submit(&format!("{path}/enable"), &[]).await;
    assert_eq!(location(&response), path);
    let page = text(&admin, &path).await;
    assert!(
        flash(&page).is_some_and(|m| m.starts_with("Endpoint enabled")),
        "{page}"
    );
    app.consent_partner(Fabrikam).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_events WHERE action IN ('webhook.endpoint_disabled', 'webhook.endpoint_enabled')"
        )
        .await,
        2,
        "one audit event per change, none for a repeat"
    );
}

#[tokio::test]
async fn rotating_the_secret_shows_the_new_one_once_and_both_sign_during_the_overlap() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let receiver = Receiver::start().await;
    let added = add_in_ui(&admin, &receiver.url(), &[]).await;
    let response = admin
        .submit(&format!("/admin/webhooks/{}/rotate-secret", added.id), &[])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("page");
    let new = field_value(&page, "id=\"webhook-secret\"").expect("new secret shown");
    assert_ne!(new, added.secret);
    assert!(page.contains("24 hours"), "names the overlap: {page}");
    let list = text(&admin, "/admin/webhooks").await;
    assert!(!list.contains(&new));
    let row = &list[list
        .find(&format!("id=\"endpoint-{}\"", added.id))
        .expect("row")..];
    assert!(row.contains("rotated"), "{row}");

    app.consent_partner(Contoso).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    let received = receiver.received();
    assert!(verifies(&added.secret, &received[0]));
    assert!(verifies(&new, &received[0]));
    assert_not_logged(&new, "rotated webhook secret");
}

#[tokio::test]
async fn viewers_and_operators_see_webhooks_but_cannot_change_them() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let added = add_in_ui(&admin, "https://hooks.example.com/a", &[]).await;
    queue_event(&app).await;
    let delivery = newest_delivery(&app, added.id).await;
    let endpoints = count(&app, "SELECT count(*) FROM webhook_endpoints").await;
    let audit = count(&app, WEBHOOK_AUDIT).await;
    for role in [Role::Viewer, Role::Operator] {
        let (browser, _) = signed_in(&app, role).await;
        let list = text(&browser, "/admin/webhooks").await;
        assert!(list.contains("https://hooks.example.com/a"), "{role}");
        assert!(
            !list.contains("id=\"add-webhook\""),
            "{role} gets no add form"
        );
        assert!(
            list.contains("href=\"/admin/webhooks\""),
            "{role} has the nav link"
        );
        let detail = text(&browser, &format!("/admin/webhooks/{}", added.id)).await;
        assert!(
            !detail.contains("/replay\""),
            "{role} gets no replay buttons"
        );
        for path in [
            "/admin/webhooks".to_owned(),
            format!("/admin/webhooks/{}/rotate-secret", added.id),
            format!("/admin/webhooks/{}/disable", added.id),
            format!("/admin/webhooks/{}/enable", added.id),
            format!("/admin/webhooks/{}/deliveries/{delivery}/replay", added.id),
        ] {
            let response = browser
                .submit(&path, &[("url", "https://evil.example/")])
                .await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{role} POST {path}"
            );
        }
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM webhook_endpoints").await,
        endpoints
    );
    assert_eq!(count(&app, WEBHOOK_AUDIT).await, audit);
    assert_eq!(
        count(&app, "SELECT count(*) FROM webhook_secrets").await,
        1,
        "no rotation"
    );
}

#[tokio::test]
async fn malformed_and_unknown_webhook_ids_are_the_layouts_404() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let first = add_in_ui(&admin, "https://hooks.example.com/a", &[]).await;
    let second = add_in_ui(&admin, "https://hooks.example.com/b", &[]).await;
    queue_event(&app).await;
    let of_first = newest_delivery(&app, first.id).await;
    let unknown = Uuid::new_v4();
    for path in [
        "/admin/webhooks/not-an-id".to_owned(),
        format!("/admin/webhooks/{unknown}"),
        "/admin/webhooks/%00".to_owned(),
    ] {
        let response = admin.get(&path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
        let html = response.text().await.expect("page");
        assert!(html.contains("<nav aria-label=\"Main\">"), "{html}");
        assert!(
            html.contains("href=\"/admin/webhooks\" id=\"error-back\""),
            "{html}"
        );
    }
    for path in [
        "/admin/webhooks/not-an-id/rotate-secret".to_owned(),
        format!("/admin/webhooks/{unknown}/rotate-secret"),
        format!("/admin/webhooks/{unknown}/disable"),
        format!("/admin/webhooks/{unknown}/enable"),
        format!(
            "/admin/webhooks/{}/deliveries/not-a-number/replay",
            first.id
        ),
        format!("/admin/webhooks/{}/deliveries/999999/replay", first.id),
        // A delivery of another endpoint is not found under this one.
        format!("/admin/webhooks/{}/deliveries/{of_first}/replay", second.id),
    ] {
        let response = admin.submit(&path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "POST {path}");
        let html = response.text().await.expect("page");
        assert!(html.contains("<nav aria-label=\"Main\">"), "{html}");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM webhook_secrets").await, 2);
    assert_eq!(replays(&app).await, 0);
}

#[tokio::test]
async fn a_bad_url_is_refused_on_the_form_with_the_input_kept() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    for (url, events) in [
        ("ftp://hooks.example.com/x", vec!["partner.consented"]),
        ("https://user:pw@hooks.example.com/x", vec![]),
        ("not a url", vec!["partner.recovered", "invitation.expired"]),
    ] {
        let mut form = vec![("url", url), ("description", "Billing & \"panel\"")];
        form.extend(events.iter().map(|e| ("events", *e)));
        let response = admin.submit("/admin/webhooks", &form).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let page = response.text().await.expect("page");
        assert!(page.contains("id=\"url-error\""), "{page}");
        assert!(page.contains("aria-invalid=\"true\""), "{page}");
        assert_eq!(
            field_value(&page, "id=\"webhook-url\"").as_deref(),
            Some(url)
        );
        assert_eq!(
            field_value(&page, "id=\"webhook-description\"").as_deref(),
            Some("Billing & \"panel\"")
        );
        for event in samgate::webhooks::EventType::ALL {
            let checkbox = format!("value=\"{}\" checked", event.as_str());
            assert_eq!(
                page.contains(&checkbox),
                events.contains(&event.as_str()),
                "{url}: {event:?} kept as chosen"
            );
        }
    }
    let response = admin
        .submit(
            "/admin/webhooks",
            &[
                ("url", "https://hooks.example.com/x"),
                ("events", "partner.exploded"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let long = "x".repeat(501);
    let response = admin
        .submit(
            "/admin/webhooks",
            &[
                ("url", "https://hooks.example.com/x"),
                ("description", &long),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .expect("page")
            .contains("500 characters")
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM webhook_endpoints").await,
        0
    );
}

#[tokio::test]
async fn webhook_posts_without_the_csrf_token_or_from_another_origin_change_nothing() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let added = add_in_ui(&admin, "https://hooks.example.com/a", &[]).await;
    queue_event(&app).await;
    let delivery = newest_delivery(&app, added.id).await;
    let audit = count(&app, WEBHOOK_AUDIT).await;
    let csrf = admin.csrf().await;
    for path in [
        "/admin/webhooks".to_owned(),
        format!("/admin/webhooks/{}/rotate-secret", added.id),
        format!("/admin/webhooks/{}/disable", added.id),
        format!("/admin/webhooks/{}/deliveries/{delivery}/replay", added.id),
    ] {
        let form = [("url", "https://evil.example/")];
        assert_eq!(
            admin.post(&path, &form).await.status(),
            StatusCode::FORBIDDEN,
            "POST {path} without a token"
        );
        let response = admin
            .client
            .post(app.url(&path))
            .header("origin", "https://evil.example")
            .form(&[("csrf", csrf.as_str()), ("url", "https://evil.example/")])
            .send()
            .await
            .expect("POST");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "POST {path} cross-origin"
        );
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM webhook_endpoints").await,
        1
    );
    assert_eq!(count(&app, "SELECT count(*) FROM webhook_secrets").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(count(&app, WEBHOOK_AUDIT).await, audit);
}

#[tokio::test]
async fn the_webhooks_pages_fit_a_phone_and_a_laptop() {
    let Some(browser) = crate::harness::browser::Browser::launch("webhooks").await else {
        return;
    };
    let app = quiet_app().await;
    let (ada, password) = crate::admin::add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let (totp, _) = crate::admin::enrol_totp(&app, ada).await;
    let events: Vec<String> = [
        "partner.consented",
        "partner.needs_consent",
        "customer.access_changed",
    ]
    .iter()
    .map(|e| (*e).to_owned())
    .collect();
    let now = app.app.clock.now();
    let (endpoint, _) = samgate::webhooks::add_endpoint(
        &app.app,
        "https://hooks.panel-of-northwind-international.example.com/samgate/webhooks/receive?tenant=northwind-production",
        &events,
        Some("Billing and provisioning panel of the production estate"),
        &Actor::parse("test"),
        now,
    )
    .await
    .expect("endpoint");
    crate::lifecycle::with_webhook_endpoint(&app).await;
    samgate::webhooks::enqueue(
        &app.pool,
        samgate::webhooks::EventType::PartnerNeedsConsent,
        Some(Uuid::new_v4()),
        serde_json::json!({ "reason": "refresh token revoked" }),
        now,
    )
    .await
    .expect("enqueue");
    // One attempt that failed with a long error, as the worker records it.
    samgate::webhooks::run_once(&app.app, now)
        .await
        .expect("delivery run");

    let session = browser.client();
    session
        .set_window_size(1280, 900)
        .await
        .expect("window size");
    crate::admin::sign_in_in_browser(
        &browser,
        &app,
        "/admin/webhooks",
        "ada@northwind.example",
        secrecy::ExposeSecret::expose_secret(&password),
        &totp,
    )
    .await;
    browser.find("table#endpoints").await;

    for (width, height) in [(1280, 900), (390, 844)] {
        session
            .set_window_size(width, height)
            .await
            .expect("window size");
        for (name, path) in [
            ("list", "/admin/webhooks".to_owned()),
            ("endpoint", format!("/admin/webhooks/{}", endpoint.id)),
        ] {
            browser.goto(&app.url(&path)).await;
            browser.find("main").await;
            browser.screenshot(&format!("{width}-{name}")).await;
            assert_fits(&browser, &format!("webhooks {name} at {width} px")).await;
        }
        browser
            .eval("document.querySelector('#deliveries').scrollIntoView(); return null")
            .await;
        browser.screenshot(&format!("{width}-deliveries")).await;
        if width == 390 {
            let shown = browser
                .eval(
                    "const link = document.querySelector('.admin-bar nav a[aria-current=page]');
                     const nav = link.parentElement.getBoundingClientRect();
                     const box = link.getBoundingClientRect();
                     return box.left >= nav.left && box.right <= nav.right;",
                )
                .await;
            assert_eq!(
                shown,
                serde_json::json!(true),
                "the current section shows in the phone nav"
            );
            let header = browser
                .eval(
                    "return document.querySelector('header.topbar').getBoundingClientRect().height",
                )
                .await;
            assert!(
                header.as_f64().is_some_and(|h| h <= 110.0),
                "a compact header on a phone: {header} px"
            );
        }
    }
    // The secret page, and the copy button admin.js reveals.
    browser.goto(&app.url("/admin/webhooks")).await;
    browser
        .fill("#webhook-url", "https://hooks.example.com/new")
        .await;
    browser.click("#add-endpoint").await;
    browser.find("#webhook-secret").await;
    browser.screenshot("390-secret").await;
    assert_fits(&browser, "webhook secret at 390 px").await;
    let copy_visible = browser
        .eval("return !document.querySelector('button[data-copy]').hidden")
        .await;
    assert_eq!(copy_visible, serde_json::json!(true));
    // The empty state, once no endpoint is left.
    sqlx::query("DELETE FROM webhook_endpoints")
        .execute(&app.pool)
        .await
        .expect("clear");
    browser.goto(&app.url("/admin/webhooks")).await;
    browser.find("#webhooks-empty").await;
    browser.screenshot("390-empty").await;
    assert_fits(&browser, "webhooks empty state at 390 px").await;
    browser.close().await;
}

#[tokio::test]
async fn the_cli_disables_and_enables_an_endpoint_as_the_ui_does() {
    let app = quiet_app().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let added = add_in_ui(&admin, "https://hooks.example.com/a", &[]).await;
    let id = added.id.to_string();
    let cli = |args: &[&str]| {
        let mut command = crate::cli::command_for(&app);
        command.args(args);
        command
    };
    let output = crate::cli::run_beside(&mut cli(&["webhooks", "disable", &id])).await;
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("disabled"));
    let page = text(&admin, &format!("/admin/webhooks/{id}")).await;
    assert!(
        page.contains("id=\"enable-endpoint\""),
        "the UI offers Enable"
    );
    let again = crate::cli::run_beside(&mut cli(&["webhooks", "disable", &id])).await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("already disabled"));
    let output = crate::cli::run_beside(&mut cli(&["webhooks", "enable", &id])).await;
    assert!(output.status.success(), "{output:?}");
    let page = text(&admin, &format!("/admin/webhooks/{id}")).await;
    assert!(
        page.contains("id=\"disable-endpoint\""),
        "the UI offers Disable"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_events WHERE actor = 'cli' AND action IN ('webhook.endpoint_disabled', 'webhook.endpoint_enabled')"
        )
        .await,
        2
    );
    let bad =
        crate::cli::run_beside(&mut cli(&["webhooks", "deliveries", "--status", "lost"])).await;
    assert!(!bad.status.success(), "an unknown status is refused");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pending, delivered, failed"));
}
