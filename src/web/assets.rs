//! Static assets compiled into the binary, so a deployment needs no asset directory and no CDN.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::web::errors::PageError;

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "samgate.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/samgate.css"),
    ),
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/admin.css"),
    ),
    (
        "activity.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/activity.css"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/admin.js"),
    ),
];

/// `/static/{file}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/static/{file}", get(show_asset))
}

async fn show_asset(Path(file): Path<String>) -> Result<Response, PageError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(PageError::not_found)?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}
