//! Replays the recorded Microsoft responses in `tests/recorded/` (listed in `index.toml`) against
//! the emulator: for every kind the emulator also produces, the same status, the same JSON field
//! names and types (recursively; values are per-request and not compared) and the same header
//! names. Each known difference is allow-listed with its reason; an allow-list entry that no
//! longer matches a difference fails too, so the lists cannot rot.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CONTOSO_ADMIN, DEMO_CPV_TENANT, Fault, MfaState, Seed};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::harness::*;

const GRAPH: &str = "https://graph.microsoft.com/.default";
const PC: &str = "https://api.partnercenter.microsoft.com/.default";

#[derive(Debug, Deserialize)]
struct Index {
    response: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    file: String,
    service: String,
    kind: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    source: String,
    #[serde(default)]
    caveat: Option<String>,
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded")
}

fn index() -> Index {
    let text = std::fs::read_to_string(corpus_dir().join("index.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn entry(file: &str) -> Entry {
    index()
        .response
        .into_iter()
        .find(|e| e.file == file)
        .unwrap_or_else(|| panic!("{file} is not in index.toml"))
}

fn body(file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(corpus_dir().join(file)).unwrap()).unwrap()
}

/// Files the emulator is not compared with, and why.
const NOT_COMPARED: &[(&str, &str)] = &[
    (
        "identity/invalid-grant-70000-v1-2014.json",
        "a 2014 v1-endpoint body (AADSTS70002 wrapping 70000); the emulator serves v2 only",
    ),
    (
        "partner-center/offercategories-collection.json",
        "offers are not emulated; its headers and collection envelope are checked against the customers page instead",
    ),
];

#[test]
fn the_index_lists_every_recorded_file_and_every_file_is_json() {
    let index = index();
    let listed: BTreeSet<String> = index.response.iter().map(|e| e.file.clone()).collect();
    assert_eq!(listed.len(), index.response.len(), "a file is listed twice");
    let mut on_disk = BTreeSet::new();
    for service in ["identity", "partner-center", "graph"] {
        for f in std::fs::read_dir(corpus_dir().join(service)).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            on_disk.insert(format!("{service}/{name}"));
        }
    }
    assert_eq!(listed, on_disk, "index.toml and the folder differ");
    for e in &index.response {
        assert!(
            e.file.starts_with(&format!("{}/", e.service)),
            "{}: service {} does not match its folder",
            e.file,
            e.service
        );
        assert!(!e.kind.is_empty() && !e.source.is_empty(), "{}", e.file);
        assert!(
            e.status.is_some() || e.caveat.as_deref().is_some_and(|c| c.contains("tatus")),
            "{}: without a status the caveat must say why",
            e.file
        );
        let bytes = std::fs::read(corpus_dir().join(&e.file)).unwrap();
        serde_json::from_slice::<Value>(&bytes)
            .unwrap_or_else(|err| panic!("{} is not JSON: {err}", e.file));
        if let Some(len) = e.headers.get("Content-Length") {
            // Only where the index says the body is byte-exact.
            if e.caveat
                .as_deref()
                .is_some_and(|c| c.contains("byte-exact"))
            {
                assert_eq!(len.parse::<usize>().unwrap(), bytes.len(), "{}", e.file);
            }
        }
    }
    for (file, _) in NOT_COMPARED {
        assert!(listed.contains(*file), "{file}");
    }
}

/// The shape of a JSON value: objects by key, arrays as the union of their elements' shapes,
/// scalars by type; `null` fits any type (Graph and Partner Center send null for absent dates).
fn shape_diff(recorded: &Value, emulated: &Value, path: &str, out: &mut BTreeSet<String>) {
    match (recorded, emulated) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(r), Value::Object(e)) => {
            for (k, rv) in r {
                match e.get(k) {
                    Some(ev) => shape_diff(rv, ev, &format!("{path}.{k}"), out),
                    None => {
                        out.insert(format!("missing {path}.{k}"));
                    }
                }
            }
            for k in e.keys().filter(|k| !r.contains_key(*k)) {
                out.insert(format!("extra {path}.{k}"));
            }
        }
        (Value::Array(r), Value::Array(e)) => {
            if let (Some(r), Some(e)) = (merged(r), merged(e)) {
                shape_diff(&r, &e, &format!("{path}[]"), out);
            }
        }
        (r, e) if type_name(r) != type_name(e) => {
            out.insert(format!(
                "type {path}: recorded {}, emulator {}",
                type_name(r),
                type_name(e)
            ));
        }
        _ => {}
    }
}

/// The union of an array's elements (objects merged key by key, first non-null value wins).
fn merged(items: &[Value]) -> Option<Value> {
    let first = items.first()?;
    if !first.is_object() {
        return Some(first.clone());
    }
    let mut all = serde_json::Map::new();
    for item in items {
        for (k, v) in item.as_object().into_iter().flatten() {
            let slot = all.entry(k.clone()).or_insert(Value::Null);
            if slot.is_null() {
                *slot = v.clone();
            }
        }
    }
    Some(Value::Object(all))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Asserts the emulator's body has the recorded shape, except for the allow-listed differences
/// (each `(difference, reason)`), and that every allow-listed difference still occurs.
fn assert_same_shape(file: &str, recorded: &Value, emulated: &Value, allowed: &[(&str, &str)]) {
    let mut diffs = BTreeSet::new();
    shape_diff(recorded, emulated, "", &mut diffs);
    let allowed_set: BTreeSet<String> = allowed.iter().map(|(d, _)| (*d).to_owned()).collect();
    let unexpected: Vec<&String> = diffs.difference(&allowed_set).collect();
    let stale: Vec<&String> = allowed_set.difference(&diffs).collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{file}: emulator differs from Microsoft: {unexpected:?}; allow-listed but no longer \
         different: {stale:?}\nemulator body: {emulated}"
    );
}

/// Asserts every recorded header name is sent by the emulator, except the allow-listed ones.
fn assert_same_header_names(file: &str, emulated: &HeaderMap, allowed_missing: &[(&str, &str)]) {
    let recorded = entry(file).headers;
    let allowed: BTreeSet<String> = allowed_missing
        .iter()
        .map(|(h, _)| h.to_ascii_lowercase())
        .collect();
    let missing: BTreeSet<String> = recorded
        .keys()
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| !emulated.contains_key(h.as_str()))
        .collect();
    let unexpected: Vec<&String> = missing.difference(&allowed).collect();
    let stale: Vec<&String> = allowed.difference(&missing).collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{file}: headers the emulator does not send: {unexpected:?}; allow-listed but sent: {stale:?}"
    );
}

fn assert_status(file: &str, emulated: u16) {
    if let Some(recorded) = entry(file).status {
        assert_eq!(emulated, recorded, "{file}: status");
    }
}

/// The values that carry meaning (not per-request): `error`, `error_codes`, `suberror`.
fn assert_same_error(file: &str, recorded: &Value, emulated: &Value) {
    for field in ["error", "error_codes", "suberror"] {
        assert_eq!(emulated.get(field), recorded.get(field), "{file}: {field}");
    }
}

async fn post_token(
    env: &TestEnv,
    tenant: &str,
    fields: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let client_id = DEMO_CLIENT_ID.to_string();
    let mut all = vec![
        ("client_id", client_id.as_str()),
        ("client_secret", ms_emulator::DEMO_CLIENT_SECRET),
    ];
    all.extend_from_slice(fields);
    let resp = env
        .http
        .post(env.url(&format!("/{tenant}/oauth2/v2.0/token")))
        .form(&all)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

async fn get(env: &TestEnv, path: &str, token: &str) -> (u16, HeaderMap, Value) {
    let resp = env.bearer_get(path, token).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

async fn refresh_error(
    env: &TestEnv,
    tenant: &str,
    rt: &str,
    scope: &str,
) -> (u16, HeaderMap, Value) {
    post_token(
        env,
        tenant,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", scope),
        ],
    )
    .await
}

fn first_customer() -> Uuid {
    Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[0]
}

/// Header names of Microsoft's token endpoint the emulator leaves out, and why.
const TOKEN_HEADERS_NOT_SENT: &[(&str, &str)] = &[
    (
        "Strict-Transport-Security",
        "HSTS is a TLS deployment concern, not part of the protocol",
    ),
    (
        "P3P",
        "a legacy browser privacy header; server-side clients ignore it",
    ),
    (
        "Set-Cookie",
        "ESTS session cookies (fpc, esctx, x-ms-gateway-slice) only matter to browsers",
    ),
    (
        "x-ms-ests-server",
        "the build and region of Microsoft's server",
    ),
];

// ---- identity -------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_success_has_microsofts_fields_and_headers() {
    let file = "identity/token-client-credentials.json";
    let mut seed = Seed::demo(REDIRECT);
    seed.apps[0].app_roles = vec!["Directory.Read.All".to_owned()];
    let env = TestEnv::with_seed(seed).await;
    let (status, headers, emulated) = post_token(
        &env,
        &DEMO_CPV_TENANT.to_string(),
        &[("grant_type", "client_credentials"), ("scope", GRAPH)],
    )
    .await;
    assert_status(file, status);
    assert_same_shape(file, &body(file), &emulated, &[]);
    assert_same_header_names(file, &headers, TOKEN_HEADERS_NOT_SENT);
}

#[tokio::test]
async fn refresh_success_with_client_info_has_microsofts_fields() {
    let file = "identity/token-refresh-token-client-info.json";
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let (status, _, emulated) = post_token(
        &env,
        "organizations",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", PC_SCOPE),
            ("client_info", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{emulated}");
    assert_same_shape(file, &body(file), &emulated, &[]);
}

#[tokio::test]
async fn unknown_tenant_is_90002_as_microsoft_sends_it() {
    let file = "identity/invalid-request-90002-tenant-not-found.json";
    let env = TestEnv::demo().await;
    let (status, headers, emulated) = post_token(
        &env,
        &Uuid::new_v4().to_string(),
        &[("grant_type", "client_credentials"), ("scope", GRAPH)],
    )
    .await;
    let recorded = body(file);
    assert_status(file, status);
    assert_same_error(file, &recorded, &emulated);
    assert_same_shape(file, &recorded, &emulated, &[]);
    assert_same_header_names(file, &headers, TOKEN_HEADERS_NOT_SENT);
}

#[tokio::test]
async fn inactive_refresh_token_is_700082_as_microsoft_sends_it() {
    let file = "identity/invalid-grant-700082-inactive-refresh-token.json";
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.advance_clock(Duration::from_secs(91 * 86_400));
    let (status, _, emulated) = refresh_error(&env, &contoso(), &rt, PC).await;
    let recorded = body(file);
    assert_status(file, status);
    assert_same_error(file, &recorded, &emulated);
    assert_same_shape(file, &recorded, &emulated, &[]);
}

#[tokio::test]
async fn revoked_grant_is_50173_as_microsoft_sends_it() {
    let file = "identity/invalid-grant-50173-grant-revoked.json";
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.revoke_refresh_tokens(DEMO_CONTOSO_ADMIN);
    let (status, _, emulated) = refresh_error(&env, &contoso(), &rt, PC).await;
    let recorded = body(file);
    assert_status(file, status);
    assert_same_error(file, &recorded, &emulated);
    assert_same_shape(file, &recorded, &emulated, &[]);
}

#[tokio::test]
async fn missing_customer_consent_is_65001_consent_required_without_error_uri() {
    let file = "identity/invalid-grant-65001-consent-required.json";
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let (status, _, emulated) =
        refresh_error(&env, &first_customer().to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    let recorded = body(file);
    assert_same_error(file, &recorded, &emulated);
    assert_same_shape(file, &recorded, &emulated, &[]);
}

#[tokio::test]
async fn new_mfa_requirement_is_50076_basic_action() {
    let file = "identity/invalid-grant-50076-basic-action.json";
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.require_new_mfa(DEMO_CONTOSO_ADMIN);
    let (status, _, emulated) = refresh_error(&env, &contoso(), &rt, PC).await;
    let recorded = body(file);
    assert_status(file, status);
    assert_eq!(emulated["error"], recorded["error"]);
    assert_eq!(emulated["suberror"], recorded["suberror"]);
    assert_eq!(emulated["error_codes"], serde_json::json!([50076]));
    let reason =
        "the recording (as MSAL Go logged it) lacks them; every other recorded body has them";
    assert_same_shape(
        file,
        &recorded,
        &emulated,
        &[
            ("extra .error_codes", reason),
            ("extra .timestamp", reason),
            ("extra .trace_id", reason),
            ("extra .correlation_id", reason),
        ],
    );
}

#[tokio::test]
async fn mfa_registration_needed_is_50079_with_basic_action() {
    let file = "identity/interaction-required-50079-claims-challenge.json";
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.require_new_mfa(DEMO_CONTOSO_ADMIN);
    env.control
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::NotRegistered);
    let (status, _, emulated) = refresh_error(&env, &contoso(), &rt, PC).await;
    let recorded = body(file);
    assert_status(file, status);
    assert_eq!(emulated["error_codes"], recorded["error_codes"]);
    assert_eq!(emulated["suberror"], recorded["suberror"]);
    // The recording is a 2018 v1 (ADAL) response: `interaction_required` and a Conditional Access
    // `claims` challenge. The emulator answers v2 refreshes with `invalid_grant` (README
    // UNCONFIRMED 8) and emits no claims challenge (README "Not emulated").
    assert_eq!(recorded["error"], "interaction_required");
    assert_eq!(emulated["error"], "invalid_grant");
    assert_same_shape(
        file,
        &recorded,
        &emulated,
        &[
            (
                "missing .claims",
                "no Conditional Access claims challenge (capolids) is emulated",
            ),
            (
                "extra .error_uri",
                "v2 bodies carry error_uri; this 2018 v1 recording has none",
            ),
        ],
    );
}

#[tokio::test]
async fn malformed_refresh_token_is_9002313() {
    let file = "identity/invalid-grant-9002313-malformed.json";
    let env = TestEnv::demo().await;
    let (status, _, emulated) = refresh_error(&env, &contoso(), "not-a-refresh-token", PC).await;
    assert_eq!(status, 400);
    let recorded = body(file);
    assert_eq!(emulated["error"], recorded["error"]);
    assert_eq!(emulated["error_codes"], recorded["error_codes"]);
    assert_same_shape(
        file,
        &recorded,
        &emulated,
        &[(
            "extra .suberror",
            "this recording is a code redemption; for a bad refresh token MSAL's test data (BAD_TOKEN_ERROR_RESPONSE) has suberror bad_token",
        )],
    );
}

#[tokio::test]
async fn expired_client_secret_is_7000222() {
    let file = "identity/invalid-client-7000222-secret-expired.json";
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.expire_client_secret(DEMO_CLIENT_ID);
    let (status, _, emulated) = refresh_error(&env, &contoso(), &rt, PC).await;
    assert_eq!(
        status, 401,
        "UNCONFIRMED 1; liprec/vsts-release-aas#119 saw 401"
    );
    let recorded = body(file);
    assert_same_error(file, &recorded, &emulated);
    assert_same_shape(file, &recorded, &emulated, &[]);
}

// ---- Partner Center -------------------------------------------------------------------------

/// Partner Center response headers the emulator leaves out, and why.
const PC_HEADERS_NOT_SENT: &[(&str, &str)] = &[(
    "Request-Context",
    "Application Insights correlation of Microsoft's own telemetry",
)];

/// Fields of a real customer the documentation's shortened sample leaves out; the emulator sends
/// them as customer-resources.md documents them.
const CUSTOMER_FIELDS_BEYOND_THE_SAMPLE: &[(&str, &str)] = &[
    (
        "extra .items[].commerceId",
        "documented Customer field; the sample is shortened",
    ),
    (
        "extra .items[].billingProfile",
        "documented Customer field; the sample is shortened",
    ),
    (
        "extra .items[].allowDelegatedAccess",
        "documented Customer field (DAP)",
    ),
    ("extra .items[].customDomains", "documented Customer field"),
    (
        "extra .items[].associatedPartnerId",
        "documented Customer field",
    ),
    (
        "extra .items[].links",
        "documented Customer field (self, subscriptions)",
    ),
    (
        "extra .items[].companyProfile.links",
        "documented CustomerCompanyProfile field",
    ),
];

async fn pc_token(env: &TestEnv) -> String {
    contoso_pc_token(env).await
}

#[tokio::test]
async fn customers_page_has_the_documented_shape() {
    let file = "partner-center/customers-page-docs.json";
    let env = TestEnv::demo().await;
    let at = pc_token(&env).await;
    let (status, headers, emulated) = get(&env, "/v1/customers?size=40", &at).await;
    assert_status(file, status);
    assert_same_shape(
        file,
        &body(file),
        &emulated,
        CUSTOMER_FIELDS_BEYOND_THE_SAMPLE,
    );
    assert_same_header_names(file, &headers, &[]);
}

#[tokio::test]
async fn customers_next_link_has_the_documented_shape() {
    let file = "partner-center/invoice-lineitems-page-with-next-docs.json";
    let env = TestEnv::demo().await;
    let at = pc_token(&env).await;
    let (status, headers, emulated) = get(&env, "/v1/customers?size=1", &at).await;
    assert_status(file, status);
    let recorded = body(file);
    assert!(emulated["links"]["next"].is_object(), "{emulated}");
    // Only the paging envelope: the items are invoice line items in the recording.
    assert_same_shape(file, &recorded["links"], &emulated["links"], &[]);
    for field in ["totalCount", "attributes"] {
        assert_same_shape(file, &recorded[field], &emulated[field], &[]);
    }
    assert_eq!(
        emulated["links"]["next"]["headers"][0]["key"],
        recorded["links"]["next"]["headers"][0]["key"]
    );
    assert_same_header_names(file, &headers, &[]);
}

#[tokio::test]
async fn collections_have_partner_centers_envelope_and_headers() {
    let file = "partner-center/offercategories-collection.json";
    let env = TestEnv::demo().await;
    let at = pc_token(&env).await;
    let (_, headers, emulated) = get(&env, "/v1/customers?size=40", &at).await;
    let recorded = body(file);
    for field in ["totalCount", "attributes"] {
        assert_same_shape(file, &recorded[field], &emulated[field], &[]);
    }
    assert!(emulated["items"].is_array());
    assert_same_header_names(file, &headers, PC_HEADERS_NOT_SENT);
}

#[tokio::test]
async fn not_found_error_has_partner_centers_shape() {
    let file = "partner-center/error-404-3000-docs.json";
    let env = TestEnv::demo().await;
    let at = pc_token(&env).await;
    let (status, headers, emulated) =
        get(&env, &format!("/v1/customers/{}", Uuid::new_v4()), &at).await;
    assert_status(file, status);
    assert_same_shape(file, &body(file), &emulated, &[]);
    assert_same_header_names(file, &headers, &[]);
}

#[tokio::test]
async fn bad_request_error_has_partner_centers_shape() {
    let file = "partner-center/error-400-60012-docs.json";
    let env = TestEnv::demo().await;
    let at = pc_token(&env).await;
    let (status, headers, emulated) = get(&env, "/v1/customers?size=0", &at).await;
    assert_status(file, status);
    assert_same_shape(file, &body(file), &emulated, &[]);
    assert_same_header_names(file, &headers, &[]);
}

#[tokio::test]
async fn throttling_has_partner_centers_body_and_retry_after() {
    let file = "partner-center/error-429-throttled-docs.json";
    let env = TestEnv::demo().await;
    let at = pc_token(&env).await;
    env.control
        .fail_next(Fault::path("/v1/customers").throttle(57).times(1));
    let (status, headers, emulated) = get(&env, "/v1/customers?size=40", &at).await;
    let recorded = body(file);
    assert_status(file, status);
    assert_same_shape(file, &recorded, &emulated, &[]);
    assert_eq!(emulated, recorded, "the throttle body is not per-request");
    assert_same_header_names(file, &headers, &[]);
}

// ---- Graph ----------------------------------------------------------------------------------

async fn graph_token(env: &TestEnv, tenant: &str) -> String {
    let rt = contoso_refresh_token(env).await;
    let (status, _, body) = refresh_error(env, tenant, &rt, GRAPH).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

const GDAP: &str = "/graph/v1.0/tenantRelationships/delegatedAdminRelationships";

#[tokio::test]
async fn invalid_token_is_graphs_401_invalid_authentication_token() {
    let env = TestEnv::demo().await;
    let (status, _, emulated) = get(&env, GDAP, "not-a-token").await;
    assert_eq!(status, 401);
    let current = "graph/error-401-invalid-authentication-token.json";
    let recorded = body(current);
    assert_eq!(emulated["error"]["code"], recorded["error"]["code"]);
    assert_same_shape(current, &recorded, &emulated, &[]);
    let older = "graph/error-401-token-validation-failure-2018.json";
    assert_same_shape(
        older,
        &body(older),
        &emulated,
        &[(
            "extra .error.innerError.client-request-id",
            "Graph added client-request-id to innerError after 2018 (the 2023 recording has it)",
        )],
    );
}

#[tokio::test]
async fn relationships_of_a_customer_tenant_are_403_authorization_request_denied() {
    let file = "graph/error-403-authorization-request-denied.json";
    let env = TestEnv::demo().await;
    let customer = first_customer();
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let at = graph_token(&env, &customer.to_string()).await;
    let (status, _, emulated) = get(&env, GDAP, &at).await;
    let recorded = body(file);
    assert_status(file, status);
    assert_eq!(emulated["error"]["code"], recorded["error"]["code"]);
    assert_same_shape(
        file,
        &recorded,
        &emulated,
        &[(
            "extra .error.innerError.client-request-id",
            "Graph added client-request-id to innerError after 2017 (the 2023 recording has it)",
        )],
    );
}

#[tokio::test]
async fn relationships_page_has_graphs_documented_shape() {
    let file = "graph/delegated-admin-relationships-docs.json";
    let env = TestEnv::demo().await;
    let at = graph_token(&env, &contoso()).await;
    let (status, headers, emulated) = get(&env, GDAP, &at).await;
    assert_status(file, status);
    assert_same_shape(
        file,
        &body(file),
        &emulated,
        &[
            (
                "missing .value[].isPartnerConsentPending",
                "only resellerDelegatedAdminRelationship (indirect resellers) carries it; not emulated",
            ),
            (
                "missing .value[].indirectProviderTenantId",
                "only resellerDelegatedAdminRelationship (indirect resellers) carries it; not emulated",
            ),
        ],
    );
    assert_same_header_names(file, &headers, &[]);
}
