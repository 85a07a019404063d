//! Feedback in the admin UI: a one-shot message after each action, error pages inside the
//! layout with a way back, a form sent after its session ended, key lifetimes and the dashboard's
//! empty state; and the layout at phone and laptop widths in a real browser.

use std::time::Duration;

use reqwest::StatusCode;
use samgate::domain::Actor;
use samgate::staff::Role;
use secrecy::ExposeSecret;

use crate::admin::{add_staff, count, field_value, location, seed_client, seed_partner, signed_in};
use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::session::AdminClient;

/// The flash message of a page, if it shows one.
pub(crate) fn flash(html: &str) -> Option<String> {
    let start = html.find("id=\"flash\"")?;
    let text = &html[start..];
    let text = &text[text.find("<p>")? + 3..];
    Some(text[..text.find("</p>")?].to_owned())
}

#[tokio::test]
async fn an_admin_action_leaves_a_message_that_shows_once() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Admin).await;
    let (client, key) = seed_client(&app).await;
    let revoked = browser
        .submit(&format!("/admin/clients/{client}/keys/{key}/revoke"), &[])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let page = browser
        .get("/admin/clients")
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(
        flash(&page).as_deref(),
        Some("Key revoked: it stopped working at once."),
        "{page}"
    );
    assert!(page.contains("role=\"status\""), "{page}");
    let again = browser
        .get("/admin/clients")
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(flash(&again), None, "a message shows once");

    // Revoking an invitation and changing a role say what happened too.
    app.invite("Fabrikam", None).await;
    let invitation: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM invitations ORDER BY created_at DESC LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .expect("invitation");
    let response = browser
        .submit(&format!("/admin/invitations/{invitation}/revoke"), &[])
        .await;
    assert_eq!(location(&response), "/admin/invitations");
    let page = browser
        .get("/admin/invitations")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        flash(&page).is_some_and(|m| m.starts_with("Invitation revoked")),
        "{page}"
    );
    let (target, _) = add_staff(&app, "vera@northwind.example", Role::Viewer).await;
    browser
        .submit(
            &format!("/admin/staff/{target}/role"),
            &[("role", "operator")],
        )
        .await;
    let page = browser
        .get("/admin/staff")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        flash(&page).is_some_and(|m| m.starts_with("Role changed to operator")),
        "{page}"
    );
}

/// The flash message the page at `path` shows.
async fn flash_at(browser: &AdminClient, path: &str) -> String {
    let page = crate::admin::page_text(browser, path).await;
    flash(&page).unwrap_or_else(|| panic!("no message on {path}: {page}"))
}

#[tokio::test]
async fn partner_actions_leave_a_message_with_the_next_step_on_failure() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (browser, _) = signed_in(&app, Role::Admin).await;
    let here = format!("/admin/partners/{partner}");

    let refreshed = browser.submit(&format!("{here}/refresh"), &[]).await;
    assert_eq!(location(&refreshed), here);
    assert!(flash_at(&browser, &here).await.starts_with("Refreshed:"));
    let again = crate::admin::page_text(&browser, &here).await;
    assert_eq!(flash(&again), None, "a message shows once");

    app.microsoft()
        .revoke_refresh_tokens(ms_emulator::DEMO_CONTOSO_ADMIN);
    browser.submit(&format!("{here}/refresh"), &[]).await;
    let message = flash_at(&browser, &here).await;
    assert!(message.starts_with("Refresh failed"), "{message}");
    assert!(
        message.contains("Create a re-consent invitation"),
        "{message}"
    );

    let (other, _) = seed_partner(&app, "Fabrikam").await;
    let there = format!("/admin/partners/{other}");
    let offboarded = browser.submit(&format!("{there}/offboard"), &[]).await;
    assert_eq!(location(&offboarded), there);
    assert!(flash_at(&browser, &there).await.starts_with("Offboarded:"));
    browser.submit(&format!("{there}/offboard"), &[]).await;
    let message = flash_at(&browser, &there).await;
    assert!(
        message.starts_with("Nothing changed: this partner was already offboarded"),
        "{message}"
    );
    assert!(message.contains("create an invitation"), "{message}");
    let page = crate::admin::page_text(&browser, &there).await;
    assert_eq!(flash(&page), None, "a message shows once");
}

#[tokio::test]
async fn granting_to_all_customers_says_it_runs_in_the_background() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (browser, _) = signed_in(&app, Role::Operator).await;
    let started = browser
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    let run_page = location(&started);
    let message = flash_at(&browser, &run_page).await;
    assert!(
        message.starts_with("Granting app consent to every customer"),
        "{message}"
    );
    let run: uuid::Uuid = run_page
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("run id");
    crate::admin::wait_for_run(&app, run).await;
}

#[tokio::test]
async fn setting_up_a_second_factor_that_is_already_on_says_so_and_whom_to_ask() {
    let app = TestApp::spawn().await;
    // Admins sign in with a second factor, so theirs is on.
    let (browser, _) = signed_in(&app, Role::Admin).await;
    for path in ["/admin/account/mfa", "/admin/account/mfa/confirm"] {
        let response = browser.submit(path, &[("code", "000000")]).await;
        assert_eq!(location(&response), "/admin/account", "{path}");
        let message = flash_at(&browser, "/admin/account").await;
        assert!(
            message.contains("already set up") && message.contains("ask an admin"),
            "{path}: {message}"
        );
    }
}

#[tokio::test]
async fn an_admin_error_page_keeps_the_navigation_and_offers_a_way_back() {
    let app = TestApp::spawn().await;
    let (operator, _) = signed_in(&app, Role::Operator).await;
    let refused = operator.get("/admin/clients").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let html = refused.text().await.expect("page");
    assert!(html.contains("<nav aria-label=\"Main\">"), "{html}");
    assert!(html.contains("href=\"/admin/partners\""), "{html}");
    assert!(html.contains("id=\"error-back\""), "{html}");
    assert!(html.contains("id=\"error-reference\""), "{html}");
    assert!(html.contains("/static/admin.css"), "{html}");

    let missing = operator
        .submit("/admin/invitations/not-an-id/revoke", &[])
        .await;
    assert_eq!(missing.status(), StatusCode::CONFLICT);
    let html = missing.text().await.expect("page");
    assert!(html.contains("<nav aria-label=\"Main\">"), "{html}");
    assert!(
        html.contains("href=\"/admin/invitations\" id=\"error-back\""),
        "{html}"
    );

    // A forged form too: refused (403), inside the layout.
    let forged = operator
        .post(
            "/admin/invitations",
            &[("csrf", "forged"), ("partner_name", "X")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(
        forged
            .text()
            .await
            .expect("page")
            .contains("<nav aria-label=\"Main\">")
    );
}

#[tokio::test]
async fn a_form_sent_after_the_session_ended_asks_to_sign_in_and_returns_to_its_page() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Operator).await;
    let browser = AdminClient::new(&app);
    let signed = browser
        .sign_in("ada@northwind.example", password.expose_secret(), None)
        .await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let csrf = browser.csrf().await;
    let before = count(&app, "SELECT count(*) FROM invitations").await;

    // 31 idle minutes, then the form on the invitations page is sent.
    app.clock.advance(Duration::from_secs(31 * 60));
    let response = browser
        .client
        .post(app.url("/admin/invitations"))
        .header("referer", app.url("/admin/invitations"))
        .form(&[("csrf", csrf.as_str()), ("partner_name", "Fabrikam")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = location(&response);
    assert_eq!(to, "/admin/login?return_to=%2Fadmin%2Finvitations&ended=1");
    assert_eq!(
        count(&app, "SELECT count(*) FROM invitations").await,
        before,
        "nothing was done"
    );
    let login = browser.get(&to).await.text().await.expect("page");
    assert!(login.contains("id=\"session-ended\""), "{login}");
    assert_eq!(
        field_value(&login, "name=\"return_to\"").as_deref(),
        Some("/admin/invitations")
    );

    // After a sign-out the session is gone entirely: the same answer (not a CSRF refusal),
    // and without a Referer the form's section is where the browser returns.
    let again = browser
        .sign_in(
            "ada@northwind.example",
            password.expose_secret(),
            Some("/admin/invitations"),
        )
        .await;
    assert_eq!(location(&again), "/admin/invitations");
    let csrf = browser.csrf().await;
    browser.submit("/admin/logout", &[]).await;
    let response = browser
        .post(
            "/admin/invitations",
            &[("csrf", csrf.as_str()), ("partner_name", "Fabrikam")],
        )
        .await;
    assert_eq!(
        location(&response),
        "/admin/login?return_to=%2Fadmin%2Finvitations&ended=1"
    );
    // A Referer of another site is never a return path.
    let response = browser
        .client
        .post(app.url("/admin/invitations"))
        .header("referer", "https://evil.example/admin/staff")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "cross-site");
}

#[tokio::test]
async fn a_key_issued_in_the_ui_expires_in_90_days_unless_another_lifetime_or_never_is_chosen() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Admin).await;
    let (client, _) = seed_client(&app).await;
    let path = format!("/admin/clients/{client}/keys");
    let form = browser
        .get("/admin/clients")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        form.contains("<option value=\"90\" selected>"),
        "90 days is the default: {form}"
    );
    assert!(form.contains("<option value=\"never\">"), "{form}");

    let issued = browser.submit(&path, &[]).await;
    assert_eq!(issued.status(), StatusCode::OK);
    assert!(
        issued
            .text()
            .await
            .expect("page")
            .contains("id=\"key-expires\"")
    );
    browser.submit(&path, &[("expires_days", "never")]).await;
    browser.submit(&path, &[("expires_days", "10")]).await;
    let refused = browser.submit(&path, &[("expires_days", "-3")]).await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);

    let now = app.app.clock.now();
    let lifetimes: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM expires_at - $2) / 86400)::int8 FROM api_keys
         WHERE client_id = $1 ORDER BY created_at",
    )
    .bind(client)
    .bind(now)
    .fetch_all(&app.pool)
    .await
    .expect("keys");
    // The seeded key never expires; then 90 days, never, 10 days; the refused one is absent.
    assert_eq!(lifetimes, [None, Some(90), None, Some(10)]);

    let page = browser
        .get("/admin/clients")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        flash(&page).is_some_and(|m| m.starts_with("No key was issued")),
        "{page}"
    );
    assert_eq!(
        page.matches("badge warn\">expires soon").count(),
        1,
        "{page}"
    );
    assert!(
        page.contains("(in 9 days)") || page.contains("(in 10 days)"),
        "{page}"
    );
    let dashboard = browser.get("/admin").await.text().await.expect("page");
    assert!(
        dashboard.contains("id=\"keys-expiring-soon\">1<"),
        "{dashboard}"
    );
}

#[tokio::test]
async fn the_dashboard_offers_a_first_invitation_and_counts_partners_in_good_english() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Operator).await;
    let empty = browser.get("/admin").await.text().await.expect("page");
    assert!(empty.contains("Create your first invitation"), "{empty}");
    assert!(!empty.contains("0 partners in all"), "{empty}");
    seed_partner(&app, "Contoso Partners").await;
    let one = browser.get("/admin").await.text().await.expect("page");
    assert!(one.contains("1 partner in all."), "{one}");
    assert!(!one.contains("Create your first invitation"), "{one}");
    seed_partner(&app, "Fabrikam").await;
    let two = browser.get("/admin").await.text().await.expect("page");
    assert!(two.contains("2 partners in all."), "{two}");
}

/// Asserts nothing on the current page sticks out of the viewport; `page` names it.
pub(crate) async fn assert_fits(browser: &crate::harness::browser::Browser, page: &str) {
    let overflow = browser.overflow().await;
    assert_eq!(
        overflow["page"],
        serde_json::json!(true),
        "{page} scrolls sideways: {overflow}"
    );
    assert_eq!(
        overflow["wide"],
        serde_json::json!([]),
        "{page} has elements wider than the viewport: {overflow}"
    );
}

#[tokio::test]
async fn the_admin_and_partner_pages_fit_a_phone_and_a_laptop_in_light_and_dark_mode() {
    let Some(browser) = crate::harness::browser::Browser::launch("layout").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (partner, tenant) = seed_partner(&app, "Contoso Partners").await;
    sqlx::query("UPDATE partners SET domain = $2 WHERE id = $1")
        .bind(partner)
        .bind("contoso-partners-international-holdings.onmicrosoft.com")
        .execute(&app.pool)
        .await
        .expect("domain");
    app.invite(
        "Fabrikam Residences and Hospitality Group",
        Some("fabrikam-residences-hospitality.onmicrosoft.com"),
    )
    .await;
    let invitation = app.invite("Contoso", Some(&tenant.to_string())).await;
    let (client, _) = seed_client(&app).await;
    let (ada, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let (secret, _) = crate::admin::enrol_totp(&app, ada).await;
    samgate::db::audit::record(
        &app.pool,
        &Actor::parse("staff:00000000-0000-4000-8000-000000000001"),
        "app_consent.bulk_grant_requested_for_every_customer",
        Some(tenant),
        serde_json::json!({ "customers": 1200, "grants": "Directory.Read.All,User.Read.All" }),
        app.app.clock.now(),
    )
    .await
    .expect("audit");

    let client_session = browser.client();
    client_session
        .set_window_size(1280, 900)
        .await
        .expect("window size");
    crate::admin::sign_in_in_browser(
        &browser,
        &app,
        "/admin",
        "ada@northwind.example",
        password.expose_secret(),
        &secret,
    )
    .await;
    browser.find("#pending-invitations").await;

    let pages = [
        ("dashboard", "/admin".to_owned()),
        ("partners", "/admin/partners".to_owned()),
        ("partner", format!("/admin/partners/{partner}")),
        ("invitations", "/admin/invitations".to_owned()),
        ("audit", "/admin/audit".to_owned()),
        ("clients", format!("/admin/clients#client-{client}")),
        ("staff", "/admin/staff".to_owned()),
        ("account", "/admin/account".to_owned()),
        ("not-found", "/admin/partners/not-a-partner".to_owned()),
        ("consent", invitation.clone()),
    ];
    for (width, height) in [(1280, 900), (390, 844)] {
        client_session
            .set_window_size(width, height)
            .await
            .expect("window size");
        for (name, path) in &pages {
            browser.goto(&app.url(path)).await;
            browser.find("main").await;
            browser.screenshot(&format!("{width}-{name}")).await;
            assert_fits(&browser, &format!("{name} at {width} px")).await;
        }
        if width == 390 {
            browser.goto(&app.url("/admin/invitations")).await;
            let header = browser
                .eval(
                    "return document.querySelector('header.topbar').getBoundingClientRect().height",
                )
                .await;
            assert!(
                header.as_f64().is_some_and(|h| h <= 110.0),
                "a compact header on a phone: {header} px"
            );
            // No two labels of a stacked table row overlap each other or their values.
            let overlaps = browser
                .eval(
                    "const bad = [];
                     for (const td of document.querySelectorAll('table.responsive td')) {
                       const next = td.nextElementSibling;
                       if (!next) continue;
                       const label = td.getBoundingClientRect();
                       if (label.bottom > next.getBoundingClientRect().top + 1) bad.push(td.dataset.label);
                     }
                     return bad;",
                )
                .await;
            assert_eq!(overlaps, serde_json::json!([]), "cells overlap");
        }
    }

    browser.prefer_dark(true).await;
    for (name, path) in [
        ("dashboard", "/admin".to_owned()),
        ("consent", invitation.clone()),
    ] {
        browser.goto(&app.url(&path)).await;
        browser.find("main").await;
        let background = browser
            .eval("return getComputedStyle(document.body).backgroundColor")
            .await;
        assert_eq!(
            background,
            serde_json::json!("rgb(13, 17, 23)"),
            "{name} follows prefers-color-scheme: dark"
        );
        browser.screenshot(&format!("dark-390-{name}")).await;
        assert_fits(&browser, &format!("{name} in dark mode")).await;
    }
    client_session
        .set_window_size(1280, 900)
        .await
        .expect("window size");
    browser.goto(&app.url("/admin/clients")).await;
    browser.find("main").await;
    browser.screenshot("dark-1280-clients").await;
    browser.close().await;
}
