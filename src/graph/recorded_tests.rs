//! Replays Microsoft's recorded Graph responses (`crates/ms-emulator/tests/recorded/`, sources in
//! its `index.toml`) through samgate's GDAP relationships client.

use secrecy::SecretString;
use url::Url;

use super::{GraphClient, GraphError};

macro_rules! recorded {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/ms-emulator/tests/recorded/graph/",
            $file
        ))
    };
}

/// A local Graph answering every request with the recorded status and body.
async fn serve(status: u16, body: &'static str) -> GraphClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let status = axum::http::StatusCode::from_u16(status).expect("status");
    let app = axum::Router::new()
        .fallback(move || async move { (status, [("content-type", "application/json")], body) });
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    GraphClient::new(http, Url::parse(&format!("http://{addr}/")).expect("url"))
}

async fn first_page(
    status: u16,
    body: &'static str,
) -> Result<super::RelationshipPage, GraphError> {
    serve(status, body)
        .await
        .relationships_page(&SecretString::from("token"), None)
        .await
}

#[tokio::test]
async fn the_documented_relationships_page_yields_each_relationship_and_its_state() {
    let page = first_page(200, recorded!("delegated-admin-relationships-docs.json"))
        .await
        .expect("page");
    assert!(page.next.is_none());
    let seen: Vec<(String, &str, usize, bool, bool)> = page
        .relationships
        .iter()
        .map(|r| {
            (
                r.customer_tenant_id.to_string(),
                r.status.as_str(),
                r.roles.len(),
                r.is_active(),
                r.ends_at.is_some(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "52eaad04-13a2-4a2f-9ce8-93a294fadf36".to_owned(),
                "active",
                1,
                true,
                true
            ),
            (
                "4b827261-d21f-4aa9-b7db-7fa1f56fb163".to_owned(),
                "terminated",
                2,
                false,
                true
            ),
            (
                "52eaad04-13a2-4a2f-9ce8-93a294fadf36".to_owned(),
                "approvalPending",
                9,
                false,
                false
            ),
        ]
    );
    let ends = page.relationships[0].ends_at.expect("endDateTime");
    assert_eq!(ends.unix_timestamp(), 1_707_564_282);
}

#[tokio::test]
async fn a_recorded_403_is_a_refusal_with_graphs_code() {
    let err = first_page(
        403,
        recorded!("error-403-authorization-request-denied.json"),
    )
    .await
    .expect_err("403");
    assert!(
        matches!(&err, GraphError::Forbidden { status: 403, code: Some(c) } if c == "Authorization_RequestDenied"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_recorded_401_keeps_graphs_invalid_authentication_token_code() {
    for body in [
        recorded!("error-401-invalid-authentication-token.json"),
        recorded!("error-401-token-validation-failure-2018.json"),
    ] {
        let err = first_page(401, body).await.expect_err("401");
        let code = match &err {
            GraphError::TokenRejected { code }
            | GraphError::Forbidden { code, .. }
            | GraphError::Status { code, .. } => code.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(code.as_deref(), Some("InvalidAuthenticationToken"));
    }
}

#[tokio::test]
async fn a_recorded_401_invalid_token_is_not_mistaken_for_missing_permissions() {
    let err = first_page(
        401,
        recorded!("error-401-invalid-authentication-token.json"),
    )
    .await
    .expect_err("401");
    assert!(
        matches!(err, GraphError::TokenRejected { .. }),
        "an invalid token must be distinguishable from a permission refusal: {err:?}"
    );
}
