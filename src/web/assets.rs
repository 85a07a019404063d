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
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
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

#[cfg(test)]
mod tests {
    /// `--name: #rrggbb` pairs of a CSS block (comments left out).
    fn variables(block: &str) -> Vec<(String, String)> {
        let mut text = String::new();
        let mut rest = block;
        while let Some((before, after)) = rest.split_once("/*") {
            text.push_str(before);
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        }
        text.push_str(rest);
        text.split(';')
            .filter_map(|decl| {
                let (name, value) = decl.rsplit_once(':')?;
                let name = name
                    .trim()
                    .rsplit(|c: char| c.is_whitespace() || c == '{')
                    .next()?;
                let value = value.trim();
                (name.starts_with("--") && value.starts_with('#') && value.len() == 7)
                    .then(|| (name.to_owned(), value.to_owned()))
            })
            .collect()
    }

    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (a, b) = (luminance(a), luminance(b));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    #[test]
    fn every_badge_meets_aa_contrast_in_light_and_dark_mode() {
        let css = std::str::from_utf8(include_bytes!("../../static/samgate.css")).expect("utf-8");
        let (light, dark) = css
            .split_once("@media (prefers-color-scheme: dark)")
            .expect("a dark-mode block");
        let light = variables(light.split_once(":root {").expect(":root").1);
        let dark = variables(dark);
        for (mode, vars) in [("light", &light), ("dark", &dark)] {
            let get = |name: &str| {
                vars.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("{mode} mode lacks {name}"))
            };
            for badge in ["ok", "warn", "bad", "neutral"] {
                let (fg, bg) = (
                    get(&format!("--badge-{badge}-fg")),
                    get(&format!("--badge-{badge}-bg")),
                );
                let ratio = contrast(&fg, &bg);
                assert!(
                    ratio >= 4.5,
                    "{mode} {badge} badge: {fg} on {bg} is {ratio:.2}:1"
                );
            }
            for (fg, bg) in [
                ("--fg", "--bg"),
                ("--muted", "--card"),
                ("--muted", "--bg"),
                ("--accent", "--card"),
            ] {
                let ratio = contrast(&get(fg), &get(bg));
                assert!(ratio >= 4.5, "{mode} {fg} on {bg} is {ratio:.2}:1");
            }
        }
        assert!(
            css.contains(
                ".badge.warn { background: var(--badge-warn-bg); color: var(--badge-warn-fg); }"
            ),
            "the badges use the checked colours"
        );
    }
}
