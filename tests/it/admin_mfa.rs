//! The second factor of password sign-ins over real HTTP: TOTP enrolment (secret shown once,
//! confirmed with a code), the second step (a code works once; wrong codes count in the password
//! throttle), recovery codes, the half-signed-in session that reaches nothing, admins made to
//! enrol, the admin and CLI resets, secrets kept out of the database and the logs, and the bound
//! on concurrent Argon2 checks.

use std::time::Duration;

use reqwest::StatusCode;
use samgate::staff::Role;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::admin::{
    add_staff, count, enrol_totp, field_value, location, second_step, seed_client, signed_in,
    totp_code, totp_code_at,
};
use crate::harness::TestApp;
use crate::harness::instance::run_cli;
use crate::harness::session::AdminClient;

const CODE_REFUSED: &str = "The code is not right or was used already";

/// A six-digit code that is valid for none of the steps around the app's time.
fn wrong_code(secret: &str, app: &TestApp) -> String {
    let now = app.app.clock.now().unix_timestamp();
    let near: Vec<String> = (-3..=3)
        .map(|step| totp_code_at(secret, now + step * 30))
        .collect();
    (0..)
        .map(|n| format!("{:06}", 123_457 + n))
        .find(|code| !near.contains(code))
        .expect("a wrong code")
}

fn next_step(app: &TestApp) {
    app.clock.advance(Duration::from_secs(30));
}

fn is_login_redirect(response: &reqwest::Response) -> bool {
    response.status() == StatusCode::SEE_OTHER && location(response).starts_with("/admin/login")
}

/// Enrols the signed-in `browser` on its account page; returns the secret and recovery codes.
/// The fourth value is the code that confirmed the enrolment (its time step is then used up).
async fn enrol_on_account_page(
    browser: &AdminClient,
    app: &TestApp,
) -> (String, String, Vec<String>, String) {
    let page = browser.get("/admin/account").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("Off:"));
    let shown = browser.submit("/admin/account/mfa", &[]).await;
    assert_eq!(shown.status(), 200);
    let html = shown.text().await.expect("page");
    let secret = field_value(&html, "id=\"totp-secret\"").expect("the secret is shown");
    let uri = field_value(&html, "id=\"totp-uri\"").expect("the otpauth URI is shown");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("issuer=Northwind%20Control%20Panel"), "{uri}");

    let wrong = browser
        .submit(
            "/admin/account/mfa/confirm",
            &[("code", &wrong_code(&secret, app))],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !wrong.text().await.expect("page").contains(&secret),
        "the secret is shown once"
    );
    let confirming = totp_code(&secret, app);
    let done = browser
        .submit("/admin/account/mfa/confirm", &[("code", &confirming)])
        .await;
    assert_eq!(done.status(), 200);
    let codes = recovery_codes(&done.text().await.expect("page"));
    assert_eq!(codes.len(), 10);
    let account = browser
        .get("/admin/account")
        .await
        .text()
        .await
        .expect("page");
    assert!(account.contains("On:") && account.contains("<strong>10</strong>"));
    assert!(!account.contains(&secret), "the secret is shown once");
    (secret, uri, codes, confirming)
}

fn recovery_codes(html: &str) -> Vec<String> {
    html.split("<code class=\"recovery-code\">")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(str::to_owned)
        .collect()
}

async fn email_of(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT email FROM staff WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("staff email")
}

async fn audit_count(app: &TestApp, action: &str, actor: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = $1 AND actor = $2")
        .bind(action)
        .bind(actor)
        .fetch_one(&app.pool)
        .await
        .expect("audit count")
}

#[tokio::test]
async fn an_enrolled_member_needs_a_code_after_the_password_and_each_code_works_once() {
    let app = TestApp::spawn().await;
    let email = "ops@northwind.example";
    let (id, password) = add_staff(&app, email, Role::Operator).await;
    let browser = AdminClient::new(&app);
    let first = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(
        location(&first),
        "/admin",
        "no second factor yet: signed in"
    );
    let (secret, _, _, confirming) = enrol_on_account_page(&browser, &app).await;
    browser.submit("/admin/logout", &[]).await;

    // The password alone no longer signs in.
    let response = browser
        .sign_in(email, password.expose_secret(), Some("/admin/partners"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/login/verify");
    assert!(is_login_redirect(&browser.get("/admin").await));
    let page = browser.get("/admin/login/verify").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("Second step"));

    // A wrong code is refused and counted by the throttle, like a wrong password.
    let failures = count(&app, "SELECT count(*) FROM staff_login_failures").await;
    let wrong = second_step(&browser, &wrong_code(&secret, &app)).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("page").contains(CODE_REFUSED));
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff_login_failures").await,
        failures + 2,
        "one failure for the account, one for the address"
    );
    // The code that confirmed the enrolment was used: it cannot sign in (the exact code, so a
    // time step passing meanwhile cannot make this a fresh one).
    let replayed = second_step(&browser, &confirming).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);

    next_step(&app);
    let code = totp_code(&secret, &app);
    let accepted = second_step(&browser, &code).await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&accepted),
        "/admin/partners",
        "back where it began"
    );
    assert_eq!(browser.get("/admin").await.status(), 200);

    // The same code again, in a new sign-in: refused.
    browser.submit("/admin/logout", &[]).await;
    browser.sign_in(email, password.expose_secret(), None).await;
    let replayed = second_step(&browser, &code).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert!(is_login_redirect(&browser.get("/admin").await));
    next_step(&app);
    let accepted = second_step(&browser, &totp_code(&secret, &app)).await;
    assert_eq!(location(&accepted), "/admin");

    let actor = format!("staff:{id}");
    assert_eq!(audit_count(&app, "staff.mfa_failed", &actor).await, 3);
    assert_eq!(
        audit_count(&app, "staff.mfa_enrolment_failed", &actor).await,
        1
    );
    assert_eq!(audit_count(&app, "staff.mfa_enrolled", &actor).await, 1);
    let methods: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'method' FROM audit_events WHERE action = 'staff.signed_in' AND actor = $1 ORDER BY id",
    )
    .bind(&actor)
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(methods, ["password", "password+totp", "password+totp"]);
}

#[tokio::test]
async fn wrong_codes_share_the_password_budget_and_lock_the_account_out() {
    let app = TestApp::spawn().await;
    let email = "ada@northwind.example";
    let (id, password) = add_staff(&app, email, Role::Admin).await;
    let (secret, _) = enrol_totp(&app, id).await;
    let browser = AdminClient::new(&app);
    // One wrong password, then four wrong codes: five failures in the window.
    browser.sign_in(email, "not the password", None).await;
    browser.sign_in(email, password.expose_secret(), None).await;
    for _ in 0..4 {
        let wrong = second_step(&browser, &wrong_code(&secret, &app)).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right code is not checked now, and the password is not either.
    let blocked = second_step(&browser, &totp_code(&secret, &app)).await;
    assert_eq!(blocked.status(), StatusCode::UNAUTHORIZED);
    let blocked = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(blocked.status(), StatusCode::UNAUTHORIZED);
    assert!(
        crate::harness::logs::captured().contains("staff sign-in locked out"),
        "the lock-out is logged"
    );

    app.clock.advance(Duration::from_secs(16 * 60));
    let response = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(location(&response), "/admin/login/verify");
    let accepted = second_step(&browser, &totp_code(&secret, &app)).await;
    assert_eq!(location(&accepted), "/admin", "the window has passed");
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_new_ones_replace_the_old() {
    let app = TestApp::spawn().await;
    let email = "ada@northwind.example";
    let (id, password) = add_staff(&app, email, Role::Admin).await;
    let (secret, codes) = enrol_totp(&app, id).await;
    let browser = AdminClient::new(&app);

    browser.sign_in(email, password.expose_secret(), None).await;
    // Typed in lower case with spaces: still the same code.
    let typed = codes[0].to_lowercase().replace('-', " ");
    let accepted = second_step(&browser, &typed).await;
    assert_eq!(location(&accepted), "/admin");
    let left: Option<String> = sqlx::query_scalar(
        "SELECT details->>'recovery_codes_left' FROM audit_events WHERE action = 'staff.recovery_code_used'",
    )
    .fetch_optional(&app.pool)
    .await
    .expect("audit");
    assert_eq!(left.as_deref(), Some("9"));

    browser.submit("/admin/logout", &[]).await;
    browser.sign_in(email, password.expose_secret(), None).await;
    let again = second_step(&browser, &codes[0]).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "used once only");
    let accepted = second_step(&browser, &codes[1]).await;
    assert_eq!(location(&accepted), "/admin");

    // New codes need a current app code; then the old ones stop working.
    let refused = browser
        .submit(
            "/admin/account/recovery-codes",
            &[("code", &wrong_code(&secret, &app))],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = browser
        .submit(
            "/admin/account/recovery-codes",
            &[("code", &totp_code(&secret, &app))],
        )
        .await;
    assert_eq!(page.status(), 200);
    let fresh = recovery_codes(&page.text().await.expect("page"));
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    assert_eq!(
        audit_count(
            &app,
            "staff.recovery_codes_regenerated",
            &format!("staff:{id}")
        )
        .await,
        1
    );
    browser.submit("/admin/logout", &[]).await;
    browser.sign_in(email, password.expose_secret(), None).await;
    let old = second_step(&browser, &codes[2]).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = second_step(&browser, &fresh[0]).await;
    assert_eq!(location(&new), "/admin");
}

#[tokio::test]
async fn a_half_signed_in_session_reaches_no_admin_page_or_action_and_expires() {
    let app = TestApp::spawn().await;
    let (client_id, _) = seed_client(&app).await;
    let email = "ada@northwind.example";
    let (id, password) = add_staff(&app, email, Role::Admin).await;
    let (secret, _) = enrol_totp(&app, id).await;
    let browser = AdminClient::new(&app);
    let response = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(location(&response), "/admin/login/verify");
    let html = browser
        .get("/admin/login/verify")
        .await
        .text()
        .await
        .expect("page");
    let csrf = field_value(&html, "name=\"csrf\"").expect("the session's token");

    for path in [
        "/admin",
        "/admin/partners",
        "/admin/invitations",
        "/admin/audit",
        "/admin/clients",
        "/admin/staff",
        "/admin/account",
    ] {
        assert!(is_login_redirect(&browser.get(path).await), "GET {path}");
    }
    let keys = "SELECT count(*) FROM api_keys";
    let before = (
        count(&app, keys).await,
        count(&app, "SELECT count(*) FROM api_clients").await,
        count(&app, "SELECT count(*) FROM staff").await,
        count(&app, "SELECT count(*) FROM invitations").await,
    );
    let own_reset = format!("/admin/staff/{id}/mfa/reset");
    let key_minting = format!("/admin/clients/{client_id}/keys");
    let posts: [(&str, Vec<(&str, &str)>); 7] = [
        (&key_minting, vec![]),
        ("/admin/clients", vec![("name", "sneaky"), ("scope", "all")]),
        (
            "/admin/staff",
            vec![("email", "eve@northwind.example"), ("role", "admin")],
        ),
        (
            "/admin/invitations",
            vec![("partner_name", "Eve"), ("expires_days", "7")],
        ),
        ("/admin/account/mfa", vec![]),
        (&own_reset, vec![]),
        ("/admin/logout-everywhere", vec![]),
    ];
    for (path, form) in &posts {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        let response = browser.post(path, &fields).await;
        assert!(is_login_redirect(&response), "POST {path}");
    }
    let after = (
        count(&app, keys).await,
        count(&app, "SELECT count(*) FROM api_clients").await,
        count(&app, "SELECT count(*) FROM staff").await,
        count(&app, "SELECT count(*) FROM invitations").await,
    );
    assert_eq!(before, after, "nothing changed");
    assert!(
        samgate::staff::mfa::is_enabled(&app.pool, id)
            .await
            .expect("status"),
        "the second factor is intact"
    );

    // The second step still waits, for five minutes only.
    assert_eq!(browser.get("/admin/login/verify").await.status(), 200);
    app.clock.advance(Duration::from_secs(6 * 60));
    assert!(is_login_redirect(&browser.get("/admin/login/verify").await));
    let late = browser
        .post(
            "/admin/login/verify",
            &[("csrf", &csrf), ("code", &totp_code(&secret, &app))],
        )
        .await;
    assert!(
        is_login_redirect(&late),
        "an expired second step signs nobody in"
    );
    assert!(is_login_redirect(&browser.get("/admin").await));
}

#[tokio::test]
async fn an_admin_without_a_second_factor_must_set_one_up_before_anything_else() {
    let app = TestApp::spawn().await;
    let email = "ada@northwind.example";
    let (id, password) = add_staff(&app, email, Role::Admin).await;
    let browser = AdminClient::new(&app);
    let response = browser
        .sign_in(email, password.expose_secret(), Some("/admin/clients"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/login/enrol");
    for path in ["/admin", "/admin/clients", "/admin/account", "/admin/staff"] {
        assert!(is_login_redirect(&browser.get(path).await), "GET {path}");
    }
    let verify = browser.get("/admin/login/verify").await;
    assert_eq!(location(&verify), "/admin/login/enrol");
    let minted = browser
        .submit("/admin/clients", &[("name", "early"), ("scope", "all")])
        .await;
    assert!(is_login_redirect(&minted));
    assert_eq!(count(&app, "SELECT count(*) FROM api_clients").await, 0);

    let page = browser.get("/admin/login/enrol").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("Set up a second factor"));
    assert!(
        !html.contains("totp-secret"),
        "no secret before it is asked for"
    );
    let shown = browser.submit("/admin/login/enrol", &[]).await;
    assert_eq!(shown.status(), 200);
    let secret =
        field_value(&shown.text().await.expect("page"), "id=\"totp-secret\"").expect("the secret");
    let wrong = browser
        .submit(
            "/admin/login/enrol/confirm",
            &[("code", &wrong_code(&secret, &app))],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(is_login_redirect(&browser.get("/admin").await));

    let done = browser
        .submit(
            "/admin/login/enrol/confirm",
            &[("code", &totp_code(&secret, &app))],
        )
        .await;
    assert_eq!(done.status(), 200);
    let html = done.text().await.expect("page");
    assert_eq!(recovery_codes(&html).len(), 10);
    assert!(
        html.contains("href=\"/admin/clients\""),
        "continues where it began"
    );
    assert_eq!(browser.get("/admin/clients").await.status(), 200);

    let actor = format!("staff:{id}");
    assert_eq!(
        audit_count(&app, "staff.mfa_enrolment_failed", &actor).await,
        1
    );
    assert_eq!(audit_count(&app, "staff.mfa_enrolled", &actor).await, 1);
    // From now on the admin signs in with a code.
    browser.submit("/admin/logout", &[]).await;
    let again = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(location(&again), "/admin/login/verify");
}

/// Every value stored in `table`, as bytes (bytea columns raw, others as text).
async fn table_bytes(app: &TestApp, sql: &str) -> Vec<Vec<u8>> {
    sqlx::query_scalar(sql)
        .fetch_all(&app.pool)
        .await
        .expect("table bytes")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every stored value that could hold a secret: the TOTP and recovery-code tables, every session
/// (the admin session store is in PostgreSQL), the audit log.
async fn stored_values(app: &TestApp) -> Vec<Vec<u8>> {
    let mut stored = Vec::new();
    for sql in [
        "SELECT sealed_secret FROM staff_mfa",
        "SELECT convert_to(row_to_json(m)::text, 'UTF8') FROM staff_mfa m",
        "SELECT code_hash FROM staff_recovery_codes",
        "SELECT convert_to(row_to_json(c)::text, 'UTF8') FROM staff_recovery_codes c",
        "SELECT data FROM tower_sessions.session",
        "SELECT convert_to(details::text, 'UTF8') FROM audit_events",
    ] {
        stored.extend(table_bytes(app, sql).await);
    }
    stored
}

fn assert_none_stored(stored: &[Vec<u8>], secrets: &[Vec<u8>]) {
    for value in stored {
        for secret in secrets {
            assert!(
                !contains(value, secret),
                "a secret is stored in plaintext: {}",
                String::from_utf8_lossy(secret)
            );
        }
    }
}

#[tokio::test]
async fn the_totp_secret_and_recovery_codes_are_never_stored_or_logged_in_plaintext() {
    let app = TestApp::spawn().await;
    let email = "viewer@northwind.example";
    let (_, password) = add_staff(&app, email, Role::Viewer).await;
    let browser = AdminClient::new(&app);
    browser.sign_in(email, password.expose_secret(), None).await;
    let (secret, uri, codes, _) = enrol_on_account_page(&browser, &app).await;
    let raw = totp_rs::Secret::try_from_base32(&secret)
        .expect("base32")
        .as_bytes()
        .to_vec();
    assert_eq!(raw.len(), 20, "a 160-bit secret");
    let mut secrets: Vec<Vec<u8>> = vec![
        raw.clone(),
        secret.as_bytes().to_vec(),
        secret.to_lowercase().into_bytes(),
        uri.as_bytes().to_vec(),
    ];
    for code in &codes {
        secrets.push(code.as_bytes().to_vec());
        secrets.push(code.replace('-', "").into_bytes());
    }

    // While the enrolling session is alive (its row is in the session store)…
    let sealed = table_bytes(&app, "SELECT sealed_secret FROM staff_mfa").await;
    assert_eq!(sealed.len(), 1);
    assert!(sealed[0].len() > raw.len(), "the secret is stored, sealed");
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff_recovery_codes").await,
        10,
        "the codes are stored, hashed"
    );
    assert!(
        count(&app, "SELECT count(*) FROM tower_sessions.session").await >= 1,
        "the session is stored too"
    );
    assert_none_stored(&stored_values(&app).await, &secrets);

    // …while half signed in, and once signed in with a code.
    browser.submit("/admin/logout", &[]).await;
    browser.sign_in(email, password.expose_secret(), None).await;
    assert_none_stored(&stored_values(&app).await, &secrets);
    next_step(&app);
    let code = totp_code(&secret, &app);
    assert_eq!(location(&second_step(&browser, &code).await), "/admin");
    assert_none_stored(&stored_values(&app).await, &secrets);
    let other = AdminClient::new(&app);
    assert_eq!(
        other
            .sign_in(email, "wrong password for the log check", None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let logs: String = crate::harness::logs::captured()
        .lines()
        .filter(|line| !line.contains(" cookie_store::"))
        .collect::<Vec<_>>()
        .join("\n");
    for secret in &secrets {
        let text = String::from_utf8_lossy(secret);
        assert!(
            !logs.contains(text.as_ref()),
            "a secret reached the logs: {text}"
        );
    }
    assert!(
        logs.contains("staff sign-in failed"),
        "the logs were captured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_resets_a_locked_out_admins_second_factor_and_audits_it() {
    let app = TestApp::spawn().await;
    let (browser, id) = signed_in(&app, Role::Admin).await;
    let email = email_of(&app, id).await;
    assert_eq!(browser.get("/admin").await.status(), 200);

    let output = tokio::task::block_in_place(|| run_cli(&app, &["staff", "reset-mfa", &email]));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("second factor of"), "{stdout}");
    assert!(stdout.contains("removed"), "{stdout}");
    assert_eq!(count(&app, "SELECT count(*) FROM staff_mfa").await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff_recovery_codes").await,
        0
    );
    let reset: Option<String> = sqlx::query_scalar(
        "SELECT details->>'staff_id' FROM audit_events WHERE action = 'staff.mfa_reset' AND actor = 'cli'",
    )
    .fetch_optional(&app.pool)
    .await
    .expect("audit");
    assert_eq!(reset, Some(id.to_string()));
    assert!(
        is_login_redirect(&browser.get("/admin").await),
        "the reset ends the admin's sessions"
    );

    // Nothing left to reset: said so, and not audited again.
    let output = tokio::task::block_in_place(|| run_cli(&app, &["staff", "reset-mfa", &email]));
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("had no second factor"));
    assert_eq!(audit_count(&app, "staff.mfa_reset", "cli").await, 1);
    let unknown =
        tokio::task::block_in_place(|| run_cli(&app, &["staff", "reset-mfa", "nobody@x.example"]));
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn an_admin_resets_a_members_second_factor_and_ends_their_sessions() {
    let app = TestApp::spawn().await;
    let (admin, admin_id) = signed_in(&app, Role::Admin).await;
    let email = "ops@northwind.example";
    let (member, password) = add_staff(&app, email, Role::Operator).await;
    let (secret, _) = enrol_totp(&app, member).await;
    let browser = AdminClient::new(&app);
    browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(
        location(&second_step(&browser, &totp_code(&secret, &app)).await),
        "/admin"
    );
    let staff_page = admin.get("/admin/staff").await.text().await.expect("page");
    assert!(staff_page.contains(&format!("/admin/staff/{member}/mfa/reset")));

    let reset = admin
        .submit(&format!("/admin/staff/{member}/mfa/reset"), &[])
        .await;
    assert_eq!(location(&reset), "/admin/staff");
    assert!(is_login_redirect(&browser.get("/admin").await));
    assert_eq!(
        audit_count(&app, "staff.mfa_reset", &format!("staff:{admin_id}")).await,
        1
    );
    // An operator needs no second factor: the password signs in again.
    let again = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(location(&again), "/admin");
}

#[tokio::test]
async fn sign_ins_beyond_the_argon2_bound_get_a_503_and_are_not_counted() {
    let app = TestApp::spawn().await;
    let email = "viewer@northwind.example";
    let (_, password) = add_staff(&app, email, Role::Viewer).await;
    let limit = app.app.argon2.clone();
    let mut held = Vec::new();
    for _ in 0..limit.capacity() {
        held.push(limit.hold().await.expect("a free slot"));
    }
    let browser = AdminClient::new(&app);
    let started = std::time::Instant::now();
    let busy = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() >= samgate::staff::ARGON2_MAX_WAIT,
        "it waited for a slot first"
    );
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert!(
        busy.text()
            .await
            .expect("page")
            .contains("Wait a few seconds and try again")
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff_login_failures").await,
        0,
        "an attempt that was never checked does not count"
    );
    drop(held);
    let response = browser.sign_in(email, password.expose_secret(), None).await;
    assert_eq!(location(&response), "/admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_does_not_stop_readiness_answering() {
    let app = TestApp::builder()
        .with_env("SAMGATE_TRUSTED_PROXIES", "127.0.0.1")
        .spawn()
        .await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = client
        .get(app.url("/admin/login"))
        .send()
        .await
        .expect("login page");
    let csrf = field_value(&login.text().await.expect("page"), "name=\"csrf\"").expect("csrf");
    let capacity = app.app.argon2.capacity();

    // Distinct accounts from distinct addresses: the throttle lets every one reach Argon2.
    let flood: Vec<_> = (0..48)
        .map(|n| {
            let client = client.clone();
            let url = app.url("/admin/login");
            let csrf = csrf.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("x-forwarded-for", format!("198.51.100.{n}"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("email", &format!("nobody{n}@northwind.example")),
                        ("password", "not the password at all"),
                    ])
                    .send()
                    .await
                    .expect("sign-in")
                    .status()
            })
        })
        .collect();

    let mut busiest = 0;
    let mut answered = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while flood.iter().any(|f| !f.is_finished()) && std::time::Instant::now() < deadline {
        busiest = busiest.max(app.app.argon2.in_use());
        for path in ["/readyz", "/healthz"] {
            let status = tokio::time::timeout(Duration::from_secs(10), app.get(path))
                .await
                .unwrap_or_else(|_| panic!("{path} did not answer within 10 s during the flood"))
                .status();
            assert_eq!(status, 200, "{path}");
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut statuses = Vec::new();
    for sign_in in flood {
        statuses.push(sign_in.await.expect("task"));
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    assert!(answered >= 2, "readiness was asked while the flood ran");
    assert_eq!(
        busiest, capacity,
        "the flood filled the {capacity} Argon2 slots and never went beyond them"
    );
    assert_eq!(app.app.argon2.in_use(), 0, "every slot came back");
}

/// A second samgate `App` on the test's database with another key ring.
fn app_with_ring(app: &TestApp, keks: &str) -> samgate::app::App {
    let mut config = app.app.config.clone();
    config.key_ring = samgate::vault::KeyRing::parse(keks, None).expect("ring");
    samgate::app::App::build(config, app.pool.clone(), app.clock.clone()).expect("build app")
}

#[tokio::test]
async fn key_rotation_rewraps_totp_secrets_so_the_old_kek_can_be_removed() {
    let app = TestApp::spawn().await;
    let ada = app.staff(Role::Admin).await;
    let (id, secret) = (ada.id, ada.totp_secret.expect("an admin is enrolled"));
    let new_key = samgate::vault::generate_key();
    let only_new = format!("2:{new_key}");
    let refused = app_with_ring(&app, &only_new)
        .check_key_ring()
        .await
        .expect_err("a TOTP secret still needs KEK 1");
    assert!(
        refused.to_string().contains("staff TOTP secrets"),
        "{refused:#}"
    );

    let rotating = app_with_ring(&app, &format!("{},{only_new}", app.keks));
    let rewrapped = samgate::jobs::key_rotation::run(&rotating, 10, |_| {})
        .await
        .expect("rotation");
    assert_eq!(rewrapped, 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff_mfa WHERE kek_id = 2").await,
        1
    );
    let after = app_with_ring(&app, &only_new);
    after
        .check_key_ring()
        .await
        .expect("KEK 1 is no longer needed");
    let outcome = samgate::staff::mfa::verify_second_step(
        &after.pool,
        &after.vault,
        id,
        &totp_code(&secret, &app),
        "198.51.100.1".parse().expect("address"),
        app.app.clock.now(),
    )
    .await
    .expect("second step");
    assert!(
        matches!(outcome, samgate::staff::mfa::SecondStep::Accepted(..)),
        "the same secret opens under KEK 2 alone: {outcome:?}"
    );
}
