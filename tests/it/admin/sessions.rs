//! Signing in (session renewal, the same answer for every refusal, the throttle) and how
//! sessions end (disabling, a role change, logging out everywhere, the absolute and idle limits).

use super::*;

#[tokio::test]
async fn signing_in_renews_the_session_id_and_opens_the_dashboard() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "Ada@Northwind.example", Role::Viewer).await;
    let browser = AdminClient::new(&app);

    let anonymous = browser.get("/admin/partners?q=contoso").await;
    assert!(redirects_to_login(&anonymous));
    assert_eq!(
        location(&anonymous),
        "/admin/login?return_to=%2Fadmin%2Fpartners%3Fq%3Dcontoso"
    );
    let login = browser.get("/admin/login").await;
    assert_eq!(login.status(), 200);
    let set_cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The form's CSRF token rides in a cookie of its own: no session exists before sign-in.
    assert!(
        set_cookie.starts_with("samgate_login_csrf="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let html = login.text().await.expect("page");
    assert!(html.contains("<label for=\"email\">Email</label>"));
    assert!(browser.session_cookie().is_none(), "no pre-login session");

    let csrf = field_value(&html, "name=\"csrf\"").expect("csrf");
    let response = browser
        .post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("email", " ada@northwind.EXAMPLE "),
                ("password", password.expose_secret()),
                ("return_to", "/admin/partners?q=contoso"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/partners?q=contoso");
    let after = browser.session_cookie().expect("a session once signed in");
    assert!(after.len() > 10);

    let dashboard = browser.get("/admin").await;
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.expect("page");
    assert!(html.contains("Partners by health"));
    assert!(html.contains("Recent failures"));
    assert!(
        !html.contains("href=\"/admin/staff\""),
        "viewers see no Staff link"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let browser = AdminClient::new(&app);
    let wrong = browser
        .sign_in("ada@northwind.example", "not the password", None)
        .await;
    let unknown = browser
        .sign_in("nobody@northwind.example", "not the password", None)
        .await;
    assert_eq!(wrong.status(), unknown.status());
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (wrong, unknown) = (
        wrong.text().await.expect("page"),
        unknown.text().await.expect("page"),
    );
    assert!(wrong.contains(REFUSED) && unknown.contains(REFUSED));
    assert!(browser.get("/admin").await.status() == StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn parallel_wrong_passwords_are_counted_before_they_are_checked() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let address: std::net::IpAddr = "198.51.100.7".parse().expect("address");
    let now = app.app.clock.now();
    let mut guesses = Vec::new();
    for i in 0..40 {
        let pool = app.pool.clone();
        let limit = app.app.argon2.clone();
        guesses.push(tokio::spawn(async move {
            samgate::staff::sign_in(
                &pool,
                &limit,
                "ada@northwind.example",
                secrecy::SecretString::from(format!("guess {i}")),
                address,
                now,
            )
            .await
            .expect("sign-in")
        }));
    }
    let mut refused = 0;
    for guess in guesses {
        match guess.await.expect("task") {
            samgate::staff::SignIn::Refused => refused += 1,
            samgate::staff::SignIn::Blocked => {}
            samgate::staff::SignIn::Busy => panic!("a guess waited beyond the Argon2 bound"),
            samgate::staff::SignIn::Accepted { .. } => panic!("a guess was accepted"),
        }
    }
    assert_eq!(
        refused,
        samgate::staff::ACCOUNT_FAILURE_LIMIT,
        "only as many passwords were checked as the limit allows"
    );
    let right = samgate::staff::sign_in(
        &app.pool,
        &app.app.argon2,
        "ada@northwind.example",
        password.clone(),
        address,
        now,
    )
    .await
    .expect("sign-in");
    assert!(matches!(right, samgate::staff::SignIn::Blocked));
}

#[tokio::test]
async fn after_five_failures_even_the_right_password_is_refused_until_the_window_passes() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let browser = AdminClient::new(&app);
    for _ in 0..samgate::staff::ACCOUNT_FAILURE_LIMIT {
        let response = browser
            .sign_in("ada@northwind.example", "guess", None)
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = browser
        .sign_in("ada@northwind.example", password.expose_secret(), None)
        .await;
    assert_eq!(blocked.status(), StatusCode::UNAUTHORIZED);
    assert!(blocked.text().await.expect("page").contains(REFUSED));
    // An unknown account is blocked the same way: the lockout says nothing about existence.
    for _ in 0..samgate::staff::ACCOUNT_FAILURE_LIMIT {
        browser
            .sign_in("ghost@northwind.example", "guess", None)
            .await;
    }
    let ghost = browser
        .sign_in("ghost@northwind.example", "guess", None)
        .await;
    assert_eq!(ghost.status(), StatusCode::UNAUTHORIZED);
    assert!(ghost.text().await.expect("page").contains(REFUSED));
    assert!(
        crate::harness::logs::captured().contains("staff sign-in blocked by the throttle"),
        "blocked attempts are logged"
    );

    app.clock.advance(Duration::from_secs(16 * 60));
    let response = browser
        .sign_in("ada@northwind.example", password.expose_secret(), None)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the window has passed"
    );
}

#[tokio::test]
async fn too_many_failures_from_one_address_block_every_account_from_it() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let browser = AdminClient::new(&app);
    for n in 0..samgate::staff::ADDRESS_FAILURE_LIMIT {
        browser
            .sign_in(&format!("user{n}@northwind.example"), "guess", None)
            .await;
    }
    let response = browser
        .sign_in("ada@northwind.example", password.expose_secret(), None)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.expect("page").contains(REFUSED));
}

#[tokio::test]
async fn disabling_changing_the_role_and_logging_out_everywhere_end_existing_sessions() {
    let app = TestApp::spawn().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;

    let (victim, id) = signed_in(&app, Role::Operator).await;
    let response = admin
        .submit(&format!("/admin/staff/{id}/disable"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(redirects_to_login(&victim.get("/admin").await));

    let (member, id) = signed_in(&app, Role::Operator).await;
    let response = admin
        .submit(&format!("/admin/staff/{id}/role"), &[("role", "viewer")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(redirects_to_login(&member.get("/admin").await));

    // Two browsers of one member; "sign out everywhere" in one ends both.
    let email = "twice@northwind.example";
    let (_, password) = add_staff(&app, email, Role::Viewer).await;
    let (laptop, phone) = (AdminClient::new(&app), AdminClient::new(&app));
    for browser in [&laptop, &phone] {
        let response = browser.sign_in(email, password.expose_secret(), None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(phone.get("/admin").await.status(), 200);
    let response = laptop.submit("/admin/logout-everywhere", &[]).await;
    assert_eq!(location(&response), "/admin/login");
    assert!(redirects_to_login(&phone.get("/admin").await));
    assert!(redirects_to_login(&laptop.get("/admin").await));

    // Plain sign-out ends only this session.
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    browser.submit("/admin/logout", &[]).await;
    assert!(redirects_to_login(&browser.get("/admin").await));

    // The last active admin cannot be disabled or demoted.
    let admins: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM staff WHERE role = 'admin' AND disabled_at IS NULL")
            .fetch_all(&app.pool)
            .await
            .expect("admins");
    assert_eq!(admins.len(), 1);
    let response = admin
        .submit(
            &format!("/admin/staff/{}/role", admins[0]),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = admin
        .submit(&format!("/admin/staff/{}/disable", admins[0]), &[])
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_session_ends_after_eight_hours_however_active_and_after_thirty_idle_minutes() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    for _ in 0..23 {
        app.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(browser.get("/admin").await.status(), 200);
    }
    app.clock.advance(Duration::from_secs(21 * 60));
    assert!(
        redirects_to_login(&browser.get("/admin").await),
        "8 h absolute"
    );

    let (browser, _) = signed_in(&app, Role::Viewer).await;
    app.clock.advance(Duration::from_secs(31 * 60));
    assert!(
        redirects_to_login(&browser.get("/admin").await),
        "30 min idle"
    );
}
