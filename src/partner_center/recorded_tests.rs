//! Replays Microsoft's recorded Partner Center responses (`crates/ms-emulator/tests/recorded/`,
//! sources in its `index.toml`) through samgate's Partner Center client and error reading.

use secrecy::SecretString;
use url::Url;

use super::{CollectionLinks, PartnerCenterClient, PartnerCenterError, error_from};

macro_rules! recorded {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/ms-emulator/tests/recorded/partner-center/",
            $file
        ))
    };
}

/// A response as Partner Center sent it (status, the recorded headers, the recorded body).
fn response(status: u16, headers: &[(&str, &str)], body: &'static str) -> reqwest::Response {
    let mut builder = axum::http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    reqwest::Response::from(builder.body(body).expect("response"))
}

/// A local server answering every request with the recorded body.
async fn serve(status: u16, body: &'static str) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let status = axum::http::StatusCode::from_u16(status).expect("status");
    let app = axum::Router::new().fallback(move || async move {
        (
            status,
            [("content-type", "application/json; charset=utf-8")],
            body,
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    Url::parse(&format!("http://{addr}/")).expect("url")
}

fn client(base: Url) -> PartnerCenterClient {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    PartnerCenterClient::new(http, base)
}

#[tokio::test]
async fn the_documented_customers_page_yields_its_two_customers_and_no_next_page() {
    let base = serve(200, recorded!("customers-page-docs.json")).await;
    let page = client(base)
        .customers_page(&SecretString::from("token"), 40, None)
        .await
        .expect("page");
    let ids: Vec<String> = page
        .customers
        .iter()
        .map(|c| c.tenant_id.to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "b44bb1fb-c595-45b0-9e09-d657365580bf",
            "45c44870-ef77-4fdd-b6fe-3dacb075cff2"
        ]
    );
    assert!(
        page.customers
            .iter()
            .all(|c| c.company_name == "companyName" && c.domain == "domain")
    );
    assert!(page.next.is_none(), "the recording has links.self only");
}

#[test]
fn a_documented_next_link_yields_its_continuation_token_and_url() {
    let page: serde_json::Value =
        serde_json::from_str(recorded!("invoice-lineitems-page-with-next-docs.json"))
            .expect("json");
    let links: CollectionLinks = serde_json::from_value(page["links"].clone()).expect("links");
    let next = links.next.expect("links.next");
    assert_eq!(next.continuation_token(), Some("AQAAAA=="));
    let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
    // The documented uri omits /v1; the link is followed under the API root.
    assert_eq!(
        next.url(&base).expect("url").as_str(),
        "https://api.partnercenter.microsoft.com/v1/invoices/unbilled/lineitems?provider=onetime&invoicelineitemtype=usagelineitems&currencycode=usd&period=previous&size=2000&seekOperation=Next"
    );
}

#[tokio::test]
async fn a_recorded_collection_of_other_items_is_refused_as_a_customers_page() {
    // A collection without `links` (and items that are not customers) must not loop or fail
    // on the envelope: items without a tenant id are a protocol error, not a panic.
    let base = serve(200, recorded!("offercategories-collection.json")).await;
    let result = client(base)
        .customers_page(&SecretString::from("token"), 40, None)
        .await;
    assert!(
        matches!(result, Err(PartnerCenterError::Protocol(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn recorded_error_bodies_keep_partner_centers_numeric_code() {
    let headers = [("content-type", "application/json; charset=utf-8")];
    for (status, body, code) in [
        (404, recorded!("error-404-3000-docs.json"), "3000"),
        (400, recorded!("error-400-60012-docs.json"), "60012"),
    ] {
        match error_from(response(status, &headers, body)).await {
            PartnerCenterError::Status {
                status: got,
                code: Some(got_code),
                retry_after: None,
            } => assert_eq!((got, got_code.as_str()), (status, code)),
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_recorded_429_is_throttling_with_its_retry_after() {
    let err = error_from(response(
        429,
        &[("content-type", "application/json"), ("retry-after", "57")],
        recorded!("error-429-throttled-docs.json"),
    ))
    .await;
    assert!(
        matches!(
            err,
            PartnerCenterError::Status {
                status: 429,
                code: None,
                retry_after: Some(57)
            }
        ),
        "{err:?}"
    );
}
