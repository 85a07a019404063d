//! The API's OpenAPI document (`/api/openapi.json`, generated in [`super::openapi`]) and a page a
//! backend engineer reads once (`/api/docs`), rendered from that same document: its Markdown as
//! HTML (raw HTML in it escaped, only web and in-page links kept), one entry per route, the error
//! table, and examples. No asset comes from the internet.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde_json::Value;

use super::openapi;
use crate::app::AppState;
use crate::web::errors::{PageError, render};

/// The OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "reference",
    security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json"))
)]
pub async fn show_openapi_document() -> Response {
    Json(openapi::document()).into_response()
}

/// This reference as a page.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "reference",
    security(()),
    responses((status = 200, description = "The page.", content_type = "text/html"))
)]
pub async fn show_api_docs(State(state): State<AppState>) -> Result<Html<String>, PageError> {
    let document = serde_json::to_value(openapi::document())
        .map_err(|e| PageError::internal(format!("openapi: {e}")))?;
    let base = state
        .config
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    render(&ApiDocsPage::from_document(&document, base))
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct ApiDocsPage {
    overview: String,
    routes: Vec<RouteDoc>,
    errors: Vec<ErrorRow>,
    /// samgate's public URL, for the examples.
    base: String,
}

/// One route, described once for all its methods.
struct RouteDoc {
    anchor: String,
    methods: Vec<String>,
    path: String,
    summary: String,
    description: String,
    params: Vec<ParamDoc>,
    answers: Vec<AnswerDoc>,
    /// The samgate error codes the route can answer with.
    errors: Vec<String>,
    public: bool,
}

struct ParamDoc {
    name: String,
    location: String,
    required: bool,
    description: String,
}

struct AnswerDoc {
    status: String,
    description: String,
}

struct ErrorRow {
    status: u64,
    code: String,
    meaning: String,
    action: String,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

impl ApiDocsPage {
    fn from_document(document: &Value, base: String) -> Self {
        let mut routes = Vec::new();
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            let operations: Vec<(&str, &Value)> = METHODS
                .iter()
                .filter_map(|m| item.get(*m).map(|op| (*m, op)))
                .collect();
            let Some((_, first)) = operations.first() else {
                continue;
            };
            let text = |field: &str| {
                item[field]
                    .as_str()
                    .or_else(|| first[field].as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            let mut params: Vec<ParamDoc> = Vec::new();
            for param in first["parameters"].as_array().into_iter().flatten() {
                params.push(ParamDoc {
                    name: param["name"].as_str().unwrap_or("").to_owned(),
                    location: param["in"].as_str().unwrap_or("").to_owned(),
                    required: param["required"].as_bool().unwrap_or(false),
                    description: markdown(param["description"].as_str().unwrap_or("")),
                });
            }
            let mut answers = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            for (status, response) in first["responses"].as_object().into_iter().flatten() {
                let codes =
                    &response["headers"][crate::web::errors::ERROR_HEADER]["schema"]["enum"];
                match codes.as_array() {
                    Some(codes) => {
                        errors.extend(codes.iter().filter_map(|c| c.as_str().map(str::to_owned)))
                    }
                    None => answers.push(AnswerDoc {
                        status: status.clone(),
                        description: markdown(response["description"].as_str().unwrap_or("")),
                    }),
                }
            }
            routes.push(RouteDoc {
                anchor: first["operationId"]
                    .as_str()
                    .unwrap_or("")
                    .trim_end_matches("_get")
                    .to_owned(),
                methods: operations.iter().map(|(m, _)| m.to_uppercase()).collect(),
                path: path.clone(),
                summary: markdown_inline(&text("summary")),
                description: markdown(&text("description")),
                params,
                answers,
                errors,
                public: first["security"].as_array().is_some_and(|s| {
                    s.iter()
                        .all(|r| r.as_object().is_some_and(|r| r.is_empty()))
                }),
            });
        }
        // The API first, this reference last (paths come sorted by path).
        routes.sort_by_key(|route| route.public);
        let errors = document["x-samgate-errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| ErrorRow {
                status: row["status"].as_u64().unwrap_or(0),
                code: row["code"].as_str().unwrap_or("").to_owned(),
                meaning: markdown_inline(row["meaning"].as_str().unwrap_or("")),
                action: markdown_inline(row["action"].as_str().unwrap_or("")),
            })
            .collect();
        Self {
            overview: markdown(document["info"]["description"].as_str().unwrap_or("")),
            routes,
            errors,
            base,
        }
    }
}

/// `text` (CommonMark) as HTML. Raw HTML in it is shown as text, and a link keeps its target only
/// when it is a web address or a path on this site.
fn markdown(text: &str) -> String {
    let events = Parser::new_ext(text, Options::empty()).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let safe = ["https://", "http://", "/", "#"]
                .iter()
                .any(|prefix| dest_url.starts_with(prefix))
                && !dest_url.starts_with("//");
            Event::Start(Tag::Link {
                link_type,
                dest_url: if safe {
                    dest_url
                } else {
                    CowStr::Borrowed("#")
                },
                title,
                id,
            })
        }
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// Like [`markdown`], for a single paragraph shown inline (a table cell, a heading).
fn markdown_inline(text: &str) -> String {
    let html = markdown(text);
    let trimmed = html.trim_end();
    match trimmed
        .strip_prefix("<p>")
        .and_then(|rest| rest.strip_suffix("</p>"))
    {
        Some(inner) if !inner.contains("<p>") => inner.to_owned(),
        _ => html,
    }
}

#[cfg(test)]
mod tests {
    use super::{markdown, markdown_inline};

    #[test]
    fn markdown_renders_code_bold_links_and_lists_and_escapes_raw_html() {
        let html = markdown(
            "Send `Authorization: Bearer sgk_…` **now**, see [the docs](/api/docs).\n\n- one\n- two",
        );
        assert!(
            html.contains("<code>Authorization: Bearer sgk_…</code>"),
            "{html}"
        );
        assert!(html.contains("<strong>now</strong>"), "{html}");
        assert!(
            html.contains(r#"<a href="/api/docs">the docs</a>"#),
            "{html}"
        );
        assert!(html.contains("<li>one</li>"), "{html}");
        let hostile = markdown(
            "<script>alert(1)</script>\n\nSee [x](javascript:alert(1)), `<b>` and <i>this</i>.",
        );
        assert!(!hostile.contains("<script"), "{hostile}");
        assert!(hostile.contains("&lt;script&gt;"), "{hostile}");
        assert!(!hostile.contains("javascript:"), "{hostile}");
        assert!(hostile.contains("<code>&lt;b&gt;</code>"), "{hostile}");
        assert!(hostile.contains("&lt;i&gt;this&lt;/i&gt;"), "{hostile}");
        assert_eq!(markdown_inline("a `b`"), "a <code>b</code>");
    }
}
