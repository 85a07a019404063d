//! Snapshot settings for what people read: error bodies, the OpenAPI document, pages. What differs
//! from run to run (ids, tokens, ports, nonces, CSRF values, times, reference ids) becomes a named
//! placeholder, so a snapshot changes only when what a user or a client sees changes.

/// Regular expressions and their placeholders, applied in order to every snapshot's text.
const PLACEHOLDERS: &[(&str, &str)] = &[
    // Both samgate and the emulator listen on port 0.
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
    (r"sgi_[A-Za-z0-9_-]+", "[invitation token]"),
    (
        r#"name="csrf" value="[^"]*""#,
        r#"name="csrf" value="[csrf]""#,
    ),
    (r#"nonce="[^"]*""#, r#"nonce="[nonce]""#),
    (
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "[uuid]",
    ),
    // Simple-form ids, such as those in the harness's staff email addresses.
    (r"\b[0-9a-f]{32}\b", "[id]"),
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}| UTC)?",
        "[time]",
    ),
    (r"\b\d{4}-\d{2}-\d{2}\b", "[date]"),
    // The JSON API's reference ids (Graph's `request-id` is the same value).
    (
        r#""(reference|request-id)": "[0-9a-f]{12}""#,
        r#""$1": "[reference]""#,
    ),
];

/// insta settings with the placeholders; bind them
/// (`let _placeholders = snapshot::settings().bind_to_scope();`) before asserting.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, placeholder) in PLACEHOLDERS {
        settings.add_filter(pattern, *placeholder);
    }
    settings
}

/// What a client of the JSON API sees of an answer: status, samgate's error header and body.
pub async fn api_answer(response: reqwest::Response) -> serde_json::Value {
    let status = response.status().as_u16();
    let error = response
        .headers()
        .get("x-samgate-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    serde_json::json!({ "status": status, "x-samgate-error": error, "body": body })
}
