//! Error pages of the admin UI inside its layout: the navigation, the same words and reference
//! as the plain error page, and a link back to the section the request belonged to.

use askama::Template;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::view::PageFrame;
use crate::web::errors::ShownPageError;

#[derive(Template)]
#[template(path = "admin/error.html")]
struct AdminErrorPage {
    frame: PageFrame,
    shown: ShownPageError,
    status: u16,
    back_path: String,
    back_label: &'static str,
}

/// Where "back" leads from `path`: its section's list (a partner's page for its sub-pages).
fn way_back(path: &str) -> (String, &'static str) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["admin", "partners", id, _, ..] if uuid::Uuid::parse_str(id).is_ok() => {
            (format!("/admin/partners/{id}"), "the partner")
        }
        ["admin", "partners", ..] => ("/admin/partners".to_owned(), "Partners"),
        ["admin", "invitations", ..] => ("/admin/invitations".to_owned(), "Invitations"),
        ["admin", "audit", ..] => ("/admin/audit".to_owned(), "the audit log"),
        ["admin", "clients", ..] => ("/admin/clients".to_owned(), "API clients"),
        ["admin", "webhooks", ..] => ("/admin/webhooks".to_owned(), "Webhooks"),
        ["admin", "staff", ..] => ("/admin/staff".to_owned(), "Staff"),
        ["admin", "account", ..] => ("/admin/account".to_owned(), "your account"),
        _ => ("/admin".to_owned(), "the dashboard"),
    }
}

/// Layer over the admin routes: an error page a handler or a check produced is shown again
/// inside the admin layout (the sign-in pages keep their own).
pub async fn show_errors_in_layout(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if path.starts_with("/admin/login") {
        return response;
    }
    let Some(shown) = response.extensions_mut().remove::<ShownPageError>() else {
        return response;
    };
    let (back_path, back_label) = way_back(&path);
    let page = AdminErrorPage {
        frame: PageFrame::anonymous(),
        status: shown.status.as_u16(),
        shown,
        back_path,
        back_label,
    };
    let Ok(html) = page.render() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html))
}

#[cfg(test)]
mod tests {
    use super::way_back;

    #[test]
    fn the_way_back_is_the_section_of_the_request() {
        assert_eq!(way_back("/admin/clients/x/keys").0, "/admin/clients");
        assert_eq!(way_back("/admin/nowhere").0, "/admin");
        assert_eq!(way_back("/admin/webhooks/x/disable").0, "/admin/webhooks");
        let id = "6a1b3c4d-0000-4000-8000-000000000001";
        assert_eq!(
            way_back(&format!("/admin/partners/{id}/customers/sync")).0,
            format!("/admin/partners/{id}")
        );
        assert_eq!(way_back("/admin/partners/not-an-id/x").0, "/admin/partners");
    }
}
