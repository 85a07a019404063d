//! The API's OpenAPI document (`/api/openapi.json`) and a readable page of it (`/api/docs`), both
//! served from the binary with no assets from the internet.

use askama::Template;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use crate::web::errors::{PageError, render};

/// The OpenAPI 3 document, kept next to the handlers it describes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/openapi.json`.
pub async fn show_openapi_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

struct Operation {
    method: String,
    path: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct ApiDocsPage {
    description: String,
    operations: Vec<Operation>,
    error_codes: Vec<String>,
}

/// `GET /api/docs`: the operations, their descriptions and the error codes.
pub async fn show_api_docs() -> Result<Html<String>, PageError> {
    let document: serde_json::Value =
        serde_json::from_str(OPENAPI).map_err(|e| PageError::internal(format!("openapi: {e}")))?;
    let mut operations = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            let described = item["description"].as_str().unwrap_or("");
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(operation) = item.get(method) {
                    let summary = operation["summary"].as_str().unwrap_or(described);
                    operations.push(Operation {
                        method: method.to_uppercase(),
                        path: path.clone(),
                        summary: summary.to_owned(),
                    });
                }
            }
        }
    }
    let error_codes = document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .map(|codes| {
            codes
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    render(&ApiDocsPage {
        description: document["info"]["description"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        operations,
        error_codes,
    })
}
