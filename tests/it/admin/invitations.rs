//! Invitations created and revoked in the UI.

use super::*;

#[tokio::test]
async fn an_invitation_created_in_the_ui_opens_the_consent_page_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let (browser, staff_id) = signed_in(&app, Role::Operator).await;
    let invalid = browser
        .submit(
            "/admin/invitations",
            &[
                ("partner_name", "Contoso"),
                ("expected_tenant", "not a tenant"),
                ("expires_days", "7"),
            ],
        )
        .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        invalid
            .text()
            .await
            .expect("page")
            .contains("tenant id (a GUID) or a domain")
    );

    let response = browser
        .submit(
            "/admin/invitations",
            &[
                ("partner_name", "Contoso"),
                ("expected_tenant", "Contoso.onmicrosoft.com"),
                ("expires_days", "3"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("page");
    let link = field_value(&html, "id=\"invitation-link\"").expect("link shown");
    let path = link.strip_prefix(&app.address).expect("a samgate link");
    assert!(path.starts_with("/consent/sgi_"));
    let consent = app.get(path).await;
    assert_eq!(consent.status(), 200);
    assert!(consent.text().await.expect("page").contains("Contoso"));
    let (expected_tenant, created_by): (Option<String>, String) =
        sqlx::query_as("SELECT expected_tenant, created_by FROM invitations")
            .fetch_one(&app.pool)
            .await
            .expect("invitation");
    assert_eq!(expected_tenant.as_deref(), Some("contoso.onmicrosoft.com"));
    assert_eq!(created_by, format!("staff:{staff_id}"));

    let list = browser
        .get("/admin/invitations")
        .await
        .text()
        .await
        .expect("page");
    assert!(list.contains("pending"));
    assert!(!list.contains(path), "the link is never shown again");
    let id: Uuid = sqlx::query_scalar("SELECT id FROM invitations")
        .fetch_one(&app.pool)
        .await
        .expect("id");
    let response = browser
        .submit(&format!("/admin/invitations/{id}/revoke"), &[])
        .await;
    assert_eq!(location(&response), "/admin/invitations");
    assert_eq!(app.get(path).await.status(), 410);
}
