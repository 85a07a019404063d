//! The API contract: the served OpenAPI document has exactly the router's routes and methods,
//! schemathesis finds nothing against a live samgate, and `/api/docs` renders the document for a
//! person (no raw Markdown, every error code, examples that run, nothing wider than a phone).

use std::collections::BTreeSet;
use std::time::Duration;

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CONTOSO};
use samgate::web::errors::ApiErrorCode;
use serde_json::Value;
use uuid::Uuid;

use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::browser::Browser;
use crate::harness::peers;
use crate::harness::snapshot::{self, api_answer};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn served_document(app: &TestApp) -> Value {
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/json"))
    );
    response.json().await.expect("the document is JSON")
}

/// A concrete URL path for a route template: tenant ids and an upstream path filled in.
fn concrete(template: &str) -> String {
    template
        .replace("{partner_tid}", &DEMO_CONTOSO.to_string())
        .replace("{customer_tid}", &Uuid::from_u128(7).to_string())
        .replace("{*path}", "v1/customers")
}

#[tokio::test]
async fn the_served_document_has_exactly_the_routes_and_methods_the_api_router_has() {
    let app = TestApp::spawn().await;
    let document = served_document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (path.clone(), m.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let routes = samgate::web::api::routes();
    let routed: BTreeSet<(String, String)> = routes
        .iter()
        .flat_map(|route| {
            route
                .methods
                .iter()
                .map(|m| (route.openapi_path(), m.as_str().to_ascii_lowercase()))
        })
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without documentation: {undocumented:?}; documented but not routed: {unrouted:?}"
    );

    // The router really answers what the table says: a listed method reaches its handler, any
    // other is 405 (a passthrough takes every method).
    for route in &routes {
        let url = app.url(&concrete(route.path));
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let response = app
                .client
                .request(method.clone(), &url)
                .send()
                .await
                .expect("request");
            let listed = route.passthrough || route.methods.contains(&method);
            if listed {
                assert_ne!(response.status(), 405, "{method} {}", route.path);
                assert_ne!(
                    response
                        .headers()
                        .get("x-samgate-error")
                        .map(|v| v.as_bytes()),
                    Some(&b"not_found"[..]),
                    "{method} {} is routed",
                    route.path
                );
            } else {
                assert_eq!(response.status(), 405, "{method} {}", route.path);
            }
        }
    }
    // Every `/api/v1` operation needs the key; only the reference is public.
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let public = operation["security"] == serde_json::json!([{}]);
            assert_eq!(public, !path.starts_with("/api/v1/"), "{method} {path}");
        }
    }
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_error_code_is_in_the_served_document_with_its_status_and_on_its_routes() {
    let app = TestApp::spawn().await;
    let document = served_document(&app).await;
    let catalogue = document["x-samgate-errors"]
        .as_array()
        .expect("x-samgate-errors");
    for code in ApiErrorCode::ALL {
        let row = catalogue
            .iter()
            .find(|row| row["code"] == code.as_str())
            .unwrap_or_else(|| panic!("{} is not in x-samgate-errors", code.as_str()));
        assert_eq!(row["status"], code.status().as_u16(), "{}", code.as_str());
    }
    // The customer codes are documented as answers of the customer Graph route, with their status.
    let customer_get = &document["paths"]["/api/v1/partners/{partner_tid}/customers/{customer_tid}/graph/{path}"]
        ["get"];
    for (code, status) in [
        ("customer_not_found", "404"),
        ("customer_access_denied", "403"),
        ("customer_policy_blocked", "403"),
        ("customer_consent_missing", "409"),
        ("customer_unavailable", "503"),
    ] {
        let codes =
            &customer_get["responses"][status]["headers"]["x-samgate-error"]["schema"]["enum"];
        assert!(
            codes
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == code)),
            "{code} under {status}: {codes}"
        );
    }
    // The passthrough explains its headers.
    let passthrough = &document["components"]["responses"]["Passthrough"];
    assert!(passthrough["headers"]["x-samgate-upstream"].is_object());
    let deadline = customer_get["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "X-Samgate-Deadline");
    assert!(deadline.is_some(), "x-samgate-deadline is documented");
}

/// schemathesis's configuration: half of the calls use the consented partner (and the customer
/// list a real page cursor, the proxy a one-segment upstream path), so real data is checked;
/// offboarding gets drawn tenant ids only, so the partner stays consented for the whole run
/// (`lifecycle.rs` offboards for real).
fn schemathesis_config(customers: &[Uuid]) -> String {
    let customers: Vec<String> = customers.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        r#"
[dictionaries]
partners = {{ values = ["{DEMO_CONTOSO}"] }}
customers = {{ values = [{customers}] }}
partner_center_paths = {{ values = ["v1"] }}
graph_paths = {{ values = ["v1.0", "beta"] }}

[warnings]
fail-on = ["unresolvable_reference", "unsupported_regex", "missing_deserializer", "method_not_allowed"]

# 410 partner_offboarded is the right answer for a partner a previous case offboarded.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]

[[operations]]
include-operation-id = ["show_partner", "create_reconsent_invitation", "sync_customers"]
parameters = {{ "path.partner_tid" = {{ dictionary = "partners", probability = 0.5 }} }}

# Every check, everywhere...
[checks]
enabled = true

# ...but on the passthrough: half the calls as the consented partner, to an upstream path of one
# segment (a path parameter cannot carry the slashes of a longer one). Microsoft's answers pass
# through as they are (an empty 404 has no content type; Graph refuses a bare `v1.0` with 400),
# so what the answer holds is checked only for samgate's own errors, on the other routes.
[[operations]]
include-path-regex = "/partner-center/"
parameters = {{ "path.partner_tid" = {{ dictionary = "partners", probability = 0.5 }}, "path.path" = {{ dictionary = "partner_center_paths", probability = 1.0 }} }}
checks = {{ positive_data_acceptance = {{ enabled = false }}, content_type_conformance = {{ enabled = false }}, response_schema_conformance = {{ enabled = false }} }}

[[operations]]
include-path-regex = "/graph/"
parameters = {{ "path.partner_tid" = {{ dictionary = "partners", probability = 0.5 }}, "path.customer_tid" = {{ dictionary = "customers", probability = 0.5 }}, "path.path" = {{ dictionary = "graph_paths", probability = 1.0 }} }}
checks = {{ positive_data_acceptance = {{ enabled = false }}, content_type_conformance = {{ enabled = false }}, response_schema_conformance = {{ enabled = false }} }}

[[operations]]
include-operation-id = "list_customers"
parameters = {{ "path.partner_tid" = {{ dictionary = "partners", probability = 0.5 }}, "query.after" = {{ dictionary = "customers", probability = 1.0 }} }}
"#,
        customers = customers.join(", ")
    )
}

/// schemathesis (property-based API testing) against a live samgate with a consented partner:
/// every operation, positive and negative data, every check. Bounded to about a minute.
#[tokio::test]
async fn schemathesis_finds_no_defect_in_the_api() {
    if !peers::python_module("schemathesis", "schemathesis") {
        return;
    }
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("schemathesis", None, false).await;
    // The customer directory, so list_customers has real pages.
    let synced = app
        .client
        .post(app.url(&format!("/api/v1/partners/{DEMO_CONTOSO}/customers/sync")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("sync");
    assert_eq!(synced.status(), 200);
    let customers: Vec<Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM customers ORDER BY company_name")
            .fetch_all(&app.pool)
            .await
            .expect("customers");
    assert!(!customers.is_empty());
    let work = std::env::temp_dir().join(format!("schemathesis-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work).expect("work directory");
    std::fs::write(
        work.join("schemathesis.toml"),
        schemathesis_config(&customers),
    )
    .expect("config");
    let run = tokio::process::Command::new("python3")
        .current_dir(&work)
        .args(["-m", "schemathesis.cli", "run"])
        .arg(app.url("/api/openapi.json"))
        .args(["--url", &app.address])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--max-examples", "40", "--max-time", "60", "--workers", "2"])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .args(["--seed", "1", "--no-color", "--continue-on-failure"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("schemathesis ends within 90 s")
        .expect("run schemathesis");
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found defects:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It really tested: the summary counts passed cases.
    assert!(stdout.contains("passed"), "{stdout}");
}

#[tokio::test]
async fn what_schemathesis_found_stays_fixed() {
    let app = TestApp::spawn().await;
    let key = app.api_key("findings", None, false).await;
    let partner = Uuid::from_u128(42);
    // A JSON array is not the documented object (serde would build the struct from `[]`).
    let offboard = app
        .client
        .post(app.url(&format!("/api/v1/partners/{partner}/offboard")))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .expect("offboard");
    assert_eq!(offboard.status(), 400);
    assert_eq!(offboard.headers()["x-samgate-error"], "bad_request");
    // A deadline that is not whole seconds is refused, not silently replaced by the default.
    for bad in ["abc", "-1", "2.5", ""] {
        let call = app
            .client
            .get(app.url(&format!(
                "/api/v1/partners/{partner}/partner-center/v1/customers"
            )))
            .bearer_auth(&key)
            .header("x-samgate-deadline", bad)
            .send()
            .await
            .expect("proxy");
        assert_eq!(call.status(), 400, "{bad:?}");
        let body: Value = call.json().await.expect("json");
        assert_eq!(body["code"], "bad_request", "{bad:?}");
    }
    // A well-formed one passes on to the next check (no such partner).
    let call = app
        .client
        .get(app.url(&format!(
            "/api/v1/partners/{partner}/partner-center/v1/customers"
        )))
        .bearer_auth(&key)
        .header("x-samgate-deadline", "600")
        .send()
        .await
        .expect("proxy");
    assert_eq!(call.status(), 404);
    // A cursor that names no customer says so.
    let app_partner = DEMO_CONTOSO;
    app.consent_partner(Contoso).await;
    let listed = app
        .client
        .get(app.url(&format!(
            "/api/v1/partners/{app_partner}/customers?after={partner}"
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("customers");
    assert_eq!(listed.status(), 400);
    let body: Value = listed.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("names no customer")),
        "{body}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_the_documented_json_error() {
    let app = TestApp::builder()
        .with_env("SAMGATE_PROXY_MAX_BODY_BYTES", "1024")
        .spawn()
        .await;
    let key = app.api_key("big", None, false).await;
    let response = app
        .client
        .post(app.url(&format!(
            "/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers"
        )))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["x-samgate-error"], "payload_too_large");
    let _placeholders = snapshot::settings().bind_to_scope();
    insta::assert_json_snapshot!("error_413_payload_too_large", api_answer(response).await);
}

/// The whole document, so that any change of the public contract shows in review.
#[tokio::test]
async fn the_openapi_document_changes_only_with_its_reviewed_snapshot() {
    let app = TestApp::spawn().await;
    let document = served_document(&app).await;
    let _placeholders = snapshot::settings().bind_to_scope();
    insta::assert_json_snapshot!("openapi_document", document);
}

/// The page without its examples: what a person reads as prose.
fn prose(html: &str) -> String {
    let mut rest = html;
    let mut out = String::new();
    while let Some(start) = rest.find("<pre") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("</pre>").expect("closed pre") + start + 6;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_api_docs_page_renders_the_generated_document_for_a_person() {
    let app = TestApp::spawn().await;
    let document = served_document(&app).await;
    let page = app.get("/api/docs").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    // Markdown is rendered, not shown: no backticks or bold markers anywhere, code in <code>.
    assert!(!html.contains('`'), "a backtick on the page");
    assert!(
        !prose(&html).contains("**"),
        "raw bold markers in the prose"
    );
    assert!(
        html.contains("<code>Authorization: Bearer sgk_…</code>"),
        "inline code is rendered"
    );
    assert!(
        html.contains("<strong>Paging.</strong>"),
        "bold is rendered"
    );
    assert!(!html.contains("<script"), "no script, no CDN");
    assert!(!html.contains("https://cdn") && !html.contains("//fonts."));
    // One entry per route, its description once however many methods it has.
    for path in document["paths"].as_object().expect("paths").keys() {
        let heading = format!("<code class=\"route-path\">{path}</code>");
        assert_eq!(html.matches(&heading).count(), 1, "{path}");
    }
    let passthrough = "with a token minted from";
    assert_eq!(html.matches(passthrough).count(), 1, "said once");
    // The error table: a row per code with its status, meaning and what to do.
    for code in ApiErrorCode::ALL {
        let row = format!(
            "<tr id=\"error-{}\"><td data-label=\"Status\">{}</td><td data-label=\"Code\"><code>{}</code></td>",
            code.as_str(),
            code.status().as_u16(),
            code.as_str()
        );
        let at = html
            .find(&row)
            .unwrap_or_else(|| panic!("no table row for {}", code.as_str()));
        let tr = &html[at..at + html[at..].find("</tr>").expect("row end")];
        assert!(
            tr.matches("<td").count() == 4 && tr.len() > row.len() + 60,
            "{tr}"
        );
    }
    // Examples for a Partner Center call, a Graph call and paging, in curl and Python; retries.
    for example in [
        "example-curl-partner-center",
        "example-python-partner-center",
        "example-curl-graph",
        "example-python-graph",
        "example-curl-paging",
        "example-python-paging",
        "example-python-retries",
    ] {
        assert!(html.contains(&format!("id=\"{example}\"")), "{example}");
    }
    assert!(html.contains("MS-ContinuationToken") && html.contains("Retry-After"));
}

/// The Python examples of `/api/docs`, exactly as the page shows them.
fn python_examples(html: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in html.match_indices("<pre id=\"example-python-") {
        let id_start = at + "<pre id=\"".len();
        let id = &html[id_start..id_start + html[id_start..].find('"').expect("id end")];
        let code_start = at + html[at..].find('>').expect("pre tag end") + 1;
        let code_start = code_start + html[code_start..].find('>').expect("code tag end") + 1;
        let code_end = code_start + html[code_start..].find("</code>").expect("code end");
        let code = html[code_start..code_end]
            .replace("&#34;", "\"")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        found.push((id.to_owned(), code));
    }
    found
}

#[tokio::test]
async fn the_python_examples_of_the_api_docs_page_run_against_samgate() {
    if !peers::python_module("requests", "requests") {
        return;
    }
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let customer = Contoso.customer(1);
    app.microsoft().grant_app_consent(customer, DEMO_CLIENT_ID);
    let key = app.api_key("docs-examples", None, true).await;
    let html = app.get("/api/docs").await.text().await.expect("html");
    let examples = python_examples(&html);
    assert_eq!(examples.len(), 4, "{examples:?}");
    for (id, code) in examples {
        let output = tokio::process::Command::new("python3")
            .args(["-c", &code])
            .env("SAMGATE_URL", &app.address)
            .env("SAMGATE_API_KEY", &key)
            .env("SAMGATE_PARTNER", DEMO_CONTOSO.to_string())
            .env("SAMGATE_CUSTOMER", customer.to_string())
            .output()
            .await
            .expect("python3");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && !stdout.trim().is_empty(),
            "{id} failed:\n{code}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if id == "example-python-retries" {
            assert!(stdout.contains("200 partner-center"), "{stdout}");
        }
    }
}

#[tokio::test]
async fn the_api_docs_page_fits_a_phone() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::launch("api-docs").await else {
        return;
    };
    browser
        .client()
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    browser.goto(&app.url("/api/docs")).await;
    browser.find("#error-table").await;
    let overflow =
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;";
    assert_eq!(
        browser.eval(overflow).await,
        serde_json::json!(0),
        "the page does not scroll sideways"
    );
    let sticking_out = browser
        .eval(
            "const limit = document.documentElement.clientWidth;
             return [...document.querySelectorAll('main *')]
               .filter(e => !e.closest('pre') || e.tagName === 'PRE')
               .filter(e => e.getBoundingClientRect().right > limit + 1)
               .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5);",
        )
        .await;
    assert_eq!(sticking_out, serde_json::json!([]), "no element sticks out");
    // A long example scrolls inside its own block.
    let scrolls = browser
        .eval(
            "const pre = document.getElementById('example-python-retries');
             return [getComputedStyle(pre).overflowX, pre.scrollWidth > pre.clientWidth];",
        )
        .await;
    assert_eq!(scrolls, serde_json::json!(["auto", true]));
    browser.screenshot("phone-top").await;
    for section in ["examples", "routes", "errors"] {
        browser
            .eval(&format!(
                "document.getElementById('{section}').scrollIntoView(); return true;"
            ))
            .await;
        browser.screenshot(&format!("phone-{section}")).await;
    }
    browser.close().await;
}
