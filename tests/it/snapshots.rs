//! Snapshots of what a reviewer must see change: the JSON API's error bodies in each shape and the
//! first pages a partner admin and a staff member see (the OpenAPI document and the 413 body are
//! snapshotted in `contract`). Volatile parts are placeholders (`harness::snapshot`). After an
//! intended change, `cargo insta review` rewrites `tests/it/snapshots/`; review it like code.

use ms_emulator::DEMO_FABRIKAM;
use samgate::staff::Role;

use crate::admin::{page_text, signed_in};
use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::snapshot::{self, api_answer};

#[tokio::test]
async fn api_errors_keep_samgates_shape_and_wear_the_upstreams_on_proxy_routes() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let contoso = Contoso.tenant();
    let only_contoso = app.api_key("billing", Some(vec![contoso]), false).await;
    let key = Some(only_contoso.as_str());
    // What a client sees of a GET: status, samgate's error header and the body.
    let answer = |path: String, key: Option<&str>| {
        let request = app.client.get(app.url(&path));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        async move { api_answer(request.send().await.expect("call")).await }
    };
    let _placeholders = snapshot::settings().bind_to_scope();

    insta::assert_json_snapshot!(
        "error_401_missing_key",
        answer("/api/v1/partners".to_owned(), None).await
    );
    insta::assert_json_snapshot!(
        "error_403_partner_out_of_scope",
        answer(format!("/api/v1/partners/{DEMO_FABRIKAM}"), key).await
    );
    insta::assert_json_snapshot!(
        "error_400_invalid_path_partner_center_shape",
        answer(
            format!("/api/v1/partners/{contoso}/partner-center/v1%2f.."),
            key
        )
        .await
    );
    let customer = Contoso.customer(1);
    insta::assert_json_snapshot!(
        "error_409_customer_consent_missing_graph_shape",
        answer(
            format!("/api/v1/partners/{contoso}/customers/{customer}/graph/v1.0/users"),
            key
        )
        .await
    );
}

#[tokio::test]
async fn the_invitation_sign_in_and_partners_pages_change_only_with_their_reviewed_snapshots() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let invitation = app.invite("Tailspin Toys", None).await;
    let consent_page = app.get(&invitation).await;
    assert_eq!(consent_page.status(), 200);
    let consent_page = consent_page.text().await.expect("page");
    let sign_in = app.get("/admin/login").await;
    assert_eq!(sign_in.status(), 200);
    let sign_in = sign_in.text().await.expect("page");
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    let partners = page_text(&browser, "/admin/partners").await;

    let _placeholders = snapshot::settings().bind_to_scope();
    insta::assert_snapshot!("page_consent_invitation", consent_page);
    insta::assert_snapshot!("page_admin_sign_in", sign_in);
    insta::assert_snapshot!("page_admin_partners", partners);
}
