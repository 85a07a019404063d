//! The public home page: what this service is and where to go.

use askama::Template;
use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::app::AppState;
use crate::web::errors::{PageError, render};

/// `/`.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(show_home_page))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    version: &'static str,
}

async fn show_home_page() -> Result<Html<String>, PageError> {
    render(&HomePage {
        version: env!("CARGO_PKG_VERSION"),
    })
}
