//! Replays Microsoft's recorded Partner Center errors (`crates/ms-emulator/tests/recorded/`,
//! sources in its `index.toml`) through the app-consent problem reports people read.

use super::Problem;
use crate::partner_center::error_from;

macro_rules! recorded {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/ms-emulator/tests/recorded/partner-center/",
            $file
        ))
    };
}

async fn problem(status: u16, headers: &[(&str, &str)], body: &'static str) -> Problem {
    let mut builder = axum::http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = reqwest::Response::from(builder.body(body).expect("response"));
    Problem::from_partner_center(&error_from(response).await)
}

#[tokio::test]
async fn a_recorded_404_is_reported_as_not_found_with_partner_centers_code() {
    let p = problem(404, &[], recorded!("error-404-3000-docs.json")).await;
    assert_eq!(p.code, "not_found PC3000");
    assert_eq!(p.retry_after, None);
}

#[tokio::test]
async fn a_recorded_429_is_reported_as_throttled_with_microsofts_wait() {
    let p = problem(
        429,
        &[("retry-after", "57")],
        recorded!("error-429-throttled-docs.json"),
    )
    .await;
    assert_eq!((p.code.as_str(), p.retry_after), ("throttled", Some(57)));
}

#[tokio::test]
async fn a_recorded_400_keeps_partner_centers_reason_code() {
    let p = problem(400, &[], recorded!("error-400-60012-docs.json")).await;
    assert_eq!(p.code, "http_400 PC60012");
    assert!(
        p.advice.contains("code names Partner Center's reason"),
        "{}",
        p.advice
    );
}
