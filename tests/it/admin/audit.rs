//! The audit log of staff actions and its filters; secrets kept out of the logs.

use super::*;

#[tokio::test]
async fn staff_actions_are_audited_and_the_audit_log_filters_them() {
    let app = TestApp::spawn().await;
    let (partner, tenant) = seed_partner(&app, "Contoso").await;
    let (admin, admin_id) = signed_in(&app, Role::Admin).await;

    let page = admin
        .submit(&format!("/admin/partners/{partner}/invitations"), &[])
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    let link = field_value(&html, "id=\"invitation-link\"").expect("link");
    assert_eq!(
        app.get(link.strip_prefix(&app.address).expect("path"))
            .await
            .status(),
        200
    );
    let invitation = pending_invitation(&app).await;
    admin
        .submit(&format!("/admin/invitations/{invitation}/revoke"), &[])
        .await;
    let created = admin
        .submit(
            "/admin/staff",
            &[
                ("email", "bob@northwind.example"),
                ("display_name", "Bob"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    let bob: Uuid =
        sqlx::query_scalar("SELECT id FROM staff WHERE email = 'bob@northwind.example'")
            .fetch_one(&app.pool)
            .await
            .expect("bob");
    admin
        .submit(&format!("/admin/staff/{bob}/role"), &[("role", "operator")])
        .await;
    admin
        .submit(&format!("/admin/staff/{bob}/sessions/revoke"), &[])
        .await;
    admin
        .submit(&format!("/admin/staff/{bob}/disable"), &[])
        .await;

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE actor = $1 ORDER BY id")
            .bind(format!("staff:{admin_id}"))
            .fetch_all(&app.pool)
            .await
            .expect("audit");
    assert_eq!(
        actions,
        [
            "staff.mfa_enrolled",
            "staff.signed_in",
            "invitation.created",
            "partner.reconsent_requested",
            "invitation.revoked",
            "staff.created",
            "staff.role_changed",
            "staff.sessions_ended",
            "staff.disabled",
        ]
    );
    let reconsent: (Option<Uuid>, Option<String>) = sqlx::query_as(
        "SELECT partner_id, expected_tenant FROM invitations WHERE partner_id IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .expect("re-consent invitation");
    assert_eq!(reconsent, (Some(partner), Some(tenant.to_string())));

    let html = admin
        .get(&format!(
            "/admin/audit?actor=staff:{admin_id}&action=staff.disabled"
        ))
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(html.matches("<code>staff.disabled</code>").count(), 1);
    assert!(!html.contains("<code>staff.created</code>"));
    let html = admin
        .get(&format!("/admin/partners/{partner}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        html.contains("partner.reconsent_requested"),
        "the partner's trail shows it"
    );
    let html = admin
        .get(&format!("/admin/audit?partner={tenant}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains("partner.reconsent_requested"));
    assert_eq!(admin.get("/admin/audit?from=yesterday").await.status(), 400);
}

#[tokio::test]
async fn passwords_session_ids_and_csrf_tokens_never_reach_the_logs() {
    let app = TestApp::spawn().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let created = admin
        .submit(
            "/admin/staff",
            &[
                ("email", "carol@northwind.example"),
                ("display_name", "Carol"),
                ("role", "operator"),
            ],
        )
        .await
        .text()
        .await
        .expect("page");
    let password = field_value(&created, "id=\"new-password\"").expect("password shown once");
    assert_eq!(password.len(), 24);
    let carol = AdminClient::new(&app);
    assert_eq!(
        carol
            .sign_in("carol@northwind.example", &password, None)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    carol
        .sign_in("carol@northwind.example", "wrong password here", None)
        .await;
    let staff_page = admin.get("/admin/staff").await.text().await.expect("page");
    assert!(
        !staff_page.contains(&password),
        "the password is shown only once"
    );

    // The test's own HTTP client (reqwest's cookie jar) logs the cookies it receives at debug
    // level; those lines are the test browser's, not samgate's.
    let logs: String = crate::harness::logs::captured()
        .lines()
        .filter(|line| !line.contains(" cookie_store::"))
        .collect::<Vec<_>>()
        .join("\n");
    let secrets = [
        password.clone(),
        admin.csrf().await,
        carol.csrf().await,
        admin.session_cookie().expect("cookie"),
        carol.session_cookie().expect("cookie"),
        "wrong password here".to_owned(),
    ];
    for secret in &secrets {
        if let Some(at) = logs.find(secret.as_str()) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("a secret reached the logs: {}", &logs[line_start..line_end]);
        }
    }
    assert!(
        !logs.contains("carol@northwind.example"),
        "emails stay out of the logs"
    );
    assert!(logs.contains("staff sign-in failed"));
}
