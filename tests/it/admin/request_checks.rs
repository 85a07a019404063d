//! Requests the admin UI refuses: a missing or wrong CSRF token, another origin, an off-site
//! `return_to`.

use super::*;

#[tokio::test]
async fn posts_without_or_with_a_wrong_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (partner, _) = seed_partner(&app, "Contoso").await;
    let (browser, _) = signed_in(&app, Role::Admin).await;
    let target_email = "target@northwind.example";
    let (target, _) = add_staff(&app, target_email, Role::Viewer).await;
    let invitation = pending_invitation(&app).await;
    let (client, key) = seed_client(&app).await;
    let customer = Uuid::new_v4();
    let invitations_before = count(&app, "SELECT count(*) FROM invitations").await;
    let staff_before = count(&app, "SELECT count(*) FROM staff").await;
    let clients_before = count(&app, "SELECT count(*) FROM api_clients").await;
    let keys_before = count(
        &app,
        "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
    )
    .await;
    let audit_before = count(&app, "SELECT count(*) FROM audit_events").await;

    let posts: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            "/admin/invitations".into(),
            vec![("partner_name", "X".into())],
        ),
        (format!("/admin/invitations/{invitation}/revoke"), vec![]),
        (format!("/admin/partners/{partner}/invitations"), vec![]),
        (format!("/admin/partners/{partner}/refresh"), vec![]),
        (format!("/admin/partners/{partner}/offboard"), vec![]),
        (
            format!("/admin/partners/{partner}/customers/{customer}/app-consent"),
            vec![],
        ),
        (
            format!("/admin/partners/{partner}/customers/{customer}/app-consent/remove"),
            vec![],
        ),
        (
            format!("/admin/partners/{partner}/app-consent-runs"),
            vec![],
        ),
        (format!("/admin/partners/{partner}/customers/sync"), vec![]),
        (
            format!("/admin/partners/{partner}/customers/app-consents"),
            vec![
                ("action", "grant".into()),
                ("customer", customer.to_string()),
            ],
        ),
        (
            "/admin/clients".into(),
            vec![("name", "forged".into()), ("scope", "all".into())],
        ),
        (format!("/admin/clients/{client}/keys"), vec![]),
        (format!("/admin/clients/{client}/keys/{key}/revoke"), vec![]),
        (format!("/admin/clients/{client}/disable"), vec![]),
        (
            "/admin/staff".into(),
            vec![
                ("email", "x@northwind.example".into()),
                ("role", "admin".into()),
            ],
        ),
        (
            format!("/admin/staff/{target}/role"),
            vec![("role", "admin".into())],
        ),
        (format!("/admin/staff/{target}/disable"), vec![]),
        (format!("/admin/staff/{target}/sessions/revoke"), vec![]),
        ("/admin/logout-everywhere".into(), vec![]),
        ("/admin/logout".into(), vec![]),
        (
            "/admin/login".into(),
            vec![("email", target_email.into()), ("password", "x".into())],
        ),
    ];
    for (path, form) in &posts {
        let without: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut wrong = without.clone();
        wrong.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        let mut empty = without.clone();
        empty.push(("csrf", ""));
        for fields in [&without, &wrong, &empty] {
            let response = browser.post(path, fields).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "POST {path} {fields:?}"
            );
        }
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM invitations").await,
        invitations_before
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff").await,
        staff_before
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM api_clients").await,
        clients_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"
        )
        .await,
        keys_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM api_clients WHERE disabled_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM app_consent_runs").await
            + count(&app, "SELECT count(*) FROM app_consents").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM partners WHERE status = 'offboarded'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_events").await,
        audit_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM invitations WHERE revoked_at IS NOT NULL"
        )
        .await,
        0
    );
    let (role, disabled, epoch): (String, Option<time::OffsetDateTime>, i32) =
        sqlx::query_as("SELECT role, disabled_at, session_epoch FROM staff WHERE id = $1")
            .bind(target)
            .fetch_one(&app.pool)
            .await
            .expect("target");
    assert_eq!((role.as_str(), disabled, epoch), ("viewer", None, 0));
    assert_eq!(browser.get("/admin").await.status(), 200, "still signed in");

    // A token from another session is no better than a forged one.
    let (other, _) = signed_in(&app, Role::Admin).await;
    let foreign = other.csrf().await;
    let response = browser
        .post(
            &format!("/admin/staff/{target}/disable"),
            &[("csrf", &foreign)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_post_from_another_origin_is_refused_even_with_the_right_token() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Operator).await;
    let csrf = browser.csrf().await;
    let before = count(&app, "SELECT count(*) FROM invitations").await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("referer", "https://evil.example/admin/invitations"),
    ] {
        let response = browser
            .client
            .post(app.url("/admin/invitations"))
            .header(header, value)
            .form(&[
                ("csrf", csrf.as_str()),
                ("partner_name", "Evil"),
                ("expires_days", "7"),
            ])
            .send()
            .await
            .expect("POST");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM invitations").await,
        before
    );
    // The same request from samgate's own origin works.
    let response = browser
        .client
        .post(app.url("/admin/invitations"))
        .header("origin", &app.address)
        .form(&[
            ("csrf", csrf.as_str()),
            ("partner_name", "Fine"),
            ("expires_days", "7"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn return_to_never_sends_the_browser_off_site() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Viewer).await;
    for attempt in [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "/admin/../..",
        "/admin//evil.com",
        "/admin/%2e%2e/%2e%2e/evil",
        "\\\\evil.com",
        "http:evil.com",
        "/admin\r\nLocation: https://evil.com",
    ] {
        let browser = AdminClient::new(&app);
        let page = browser
            .get(&format!(
                "/admin/login?{}",
                serde_urlencoded::to_string([("return_to", attempt)]).expect("query")
            ))
            .await
            .text()
            .await
            .expect("page");
        assert_eq!(
            field_value(&page, "name=\"return_to\"").as_deref(),
            Some("/admin"),
            "{attempt:?}"
        );
        let response = browser
            .sign_in(
                "ada@northwind.example",
                password.expose_secret(),
                Some(attempt),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/admin", "{attempt:?}");
    }
}
