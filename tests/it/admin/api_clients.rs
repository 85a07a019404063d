//! API clients and their keys in the UI: a key shown once, revocation effective at once.

use super::*;

#[tokio::test]
async fn an_admin_creates_a_client_issues_a_key_once_and_revocation_stops_it_at_once() {
    let app = TestApp::spawn().await;
    app.consent_partner(Contoso).await;
    let (browser, _) = signed_in(&app, Role::Admin).await;
    let html = page_text(&browser, "/admin/clients").await;
    assert!(
        html.contains("Contoso Partners"),
        "partners are offered for the scope"
    );

    let contoso = ms_emulator::DEMO_CONTOSO.to_string();
    let fabrikam = ms_emulator::DEMO_FABRIKAM.to_string();
    let response = browser
        .submit(
            "/admin/clients",
            &[
                ("name", "billing-sync"),
                ("description", "Nightly billing"),
                ("scope", "chosen"),
                ("partners", &contoso),
                ("read_only", "yes"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let duplicate = browser
        .submit(
            "/admin/clients",
            &[("name", "billing-sync"), ("scope", "all")],
        )
        .await;
    assert_eq!(duplicate.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        duplicate
            .text()
            .await
            .expect("page")
            .contains("already exists")
    );
    let none_chosen = browser
        .submit("/admin/clients", &[("name", "other"), ("scope", "chosen")])
        .await;
    assert_eq!(none_chosen.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let client = samgate::api_keys::find_client(&app.pool, "billing-sync")
        .await
        .expect("lookup")
        .expect("created");
    assert!(client.read_only);
    assert_eq!(
        client.scope,
        samgate::api_keys::PartnerScope::from_stored(false, [ms_emulator::DEMO_CONTOSO])
    );

    let issued = browser
        .submit(&format!("/admin/clients/{}/keys", client.id), &[])
        .await;
    assert_eq!(issued.status(), StatusCode::OK);
    let html = issued.text().await.expect("page");
    let key = field_value(&html, "id=\"api-key\"").expect("the key is shown");
    assert!(key.starts_with("sgk_"));
    let list = page_text(&browser, "/admin/clients").await;
    assert!(!list.contains(&key), "the key is shown only once");
    assert!(
        list.contains(&format!("{}…", &key[..12])) || list.contains("sgk_"),
        "{list}"
    );

    let call = |key: String, tenant: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url(&format!(
                    "/api/v1/partners/{tenant}/partner-center/v1/customers"
                )))
                .bearer_auth(key)
                .send()
                .await
                .expect("proxy call")
                .status()
        }
    };
    assert_eq!(call(key.clone(), contoso.clone()).await, StatusCode::OK);
    assert_eq!(call(key.clone(), fabrikam).await, StatusCode::FORBIDDEN);

    let key_id: Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE client_id = $1")
        .bind(client.id)
        .fetch_one(&app.pool)
        .await
        .expect("key id");
    let revoked = browser
        .submit(
            &format!("/admin/clients/{}/keys/{key_id}/revoke", client.id),
            &[],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        call(key.clone(), contoso.clone()).await,
        StatusCode::UNAUTHORIZED,
        "refused at once"
    );
    let again = browser
        .submit(
            &format!("/admin/clients/{}/keys/{key_id}/revoke", client.id),
            &[],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let disabled = browser
        .submit(&format!("/admin/clients/{}/disable", client.id), &[])
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let html = page_text(&browser, "/admin/clients").await;
    assert!(
        html.contains(">disabled<") && html.contains(">revoked<"),
        "{html}"
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'api_%' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .expect("audit");
    assert_eq!(
        events,
        [
            "api_client.created",
            "api_key.issued",
            "api_key.revoked",
            "api_client.disabled"
        ]
    );
}
