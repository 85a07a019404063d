//! Fuzz entry points: each takes arbitrary bytes, drives one parser or check that faces untrusted
//! input, and panics only when a security invariant breaks (a forged value opens, a path leaves its
//! base, a denied header crosses the proxy, a forged ID token is accepted). `fuzz/fuzz_targets/*`
//! call these one to one; `tests/it/hardening.rs` replays the committed `fuzz/corpus/`.
//! Keys and JWKS here are fixed test material, not secrets; nothing touches the network or a database.

use std::sync::OnceLock;

use axum::extract::{FromRequest, Query};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::identity::errors::{self, TokenErrorBody};
use crate::identity::{KeySet, access_token_amr};
use crate::partner_center::{self, PartnerCenterErrorBody};
use crate::proxy::links::{LinkTarget, rewrite};
use crate::proxy::{Upstream, headers, path};
use crate::vault::{KeyEncryptionKey, KeyRing, LocalKek, SealContext, Vault};
use crate::web::consent::CallbackParams;

/// A fuzz entry point: arbitrary bytes in, a panic only when an invariant breaks.
pub type FuzzTarget = fn(&[u8]);

/// Every fuzz target by name (the directory name under `fuzz/corpus/`).
pub const TARGETS: &[(&str, FuzzTarget)] = &[
    ("sealed_open", sealed_open),
    ("proxy_path", proxy_path),
    ("proxy_headers", proxy_headers),
    ("oauth_callback", oauth_callback),
    ("id_token", id_token),
    ("error_bodies", error_bodies),
    ("proxy_links", proxy_links),
];

/// Runs `f` to completion on a per-thread current-thread runtime (fuzz targets are synchronous).
fn block_on<F: Future>(f: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(f))
}

// ---------------------------------------------------------------------------------------------
// Vault

const SEAL_PLAINTEXT: &[u8] = b"0.AXoA-fuzzing-refresh-token";
const SEAL_CONTEXT: SealContext<'static> = SealContext {
    purpose: "grant.refresh_token",
    row: "7b1f0c1e-0000-4000-8000-00000000f022",
};

fn fuzz_vault() -> &'static (Vault, Vec<u8>) {
    static VAULT: OnceLock<(Vault, Vec<u8>)> = OnceLock::new();
    VAULT.get_or_init(|| {
        let keks: Vec<std::sync::Arc<dyn KeyEncryptionKey>> = vec![
            std::sync::Arc::new(LocalKek::new(1, &[0x11; 32])),
            std::sync::Arc::new(LocalKek::new(2, &[0x22; 32])),
        ];
        let vault = Vault::new(KeyRing::from_keks(keks, Some(2)).expect("a fixed ring"));
        let sealed = vault
            .seal(SEAL_PLAINTEXT, &SEAL_CONTEXT)
            .expect("sealing the reference value");
        (vault, sealed.bytes)
    })
}

/// Opening attacker-chosen bytes never succeeds, and a genuine sealed value XOR-ed with the input
/// (or lengthened by it) opens only when the input changed nothing.
pub fn sealed_open(data: &[u8]) {
    let (vault, genuine) = fuzz_vault();
    // 1. The input itself as a sealed value: header parsing must not panic, nothing may open.
    let _ = Vault::kek_id_of(data);
    let _ = vault.needs_rewrap(data);
    assert!(
        vault.open(data, &SEAL_CONTEXT).is_err(),
        "bytes nobody sealed were accepted by the vault"
    );
    assert!(
        vault.rewrap(data, &SEAL_CONTEXT).is_err(),
        "bytes nobody sealed were re-wrapped"
    );
    // 2. The genuine value with the input applied as an XOR mask; bytes past its end extend it.
    let mut tampered = genuine.clone();
    for (i, b) in data.iter().enumerate() {
        match tampered.get_mut(i) {
            Some(slot) => *slot ^= b,
            None => tampered.push(*b),
        }
    }
    let opened = vault.open(&tampered, &SEAL_CONTEXT);
    if tampered == *genuine {
        let plaintext = opened.expect("the untouched value opens");
        assert_eq!(plaintext.expose_secret(), SEAL_PLAINTEXT);
    } else {
        assert!(opened.is_err(), "a tampered sealed value opened");
        // A re-wrap checks the DEK only: it may succeed when only the payload was changed, but
        // the result must still refuse to open.
        if let Ok(rewrapped) = vault.rewrap(&tampered, &SEAL_CONTEXT) {
            assert!(
                vault.open(&rewrapped, &SEAL_CONTEXT).is_err(),
                "re-wrapping laundered a tampered payload"
            );
        }
    }
    // 3. The genuine value under another row never opens.
    assert!(
        vault
            .open(
                genuine,
                &SealContext::new(crate::vault::Purpose::RefreshToken, "another-row")
            )
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Proxy paths and headers

const BASES: &[&str] = &[
    "https://api.partnercenter.microsoft.com",
    "https://graph.microsoft.com/",
    "http://127.0.0.1:9/graph",
];

/// Asserts that `uri` is on `base`'s origin, under its path, without a fragment or a dot segment.
fn assert_under(base: &url::Url, uri: &axum::http::Uri, input: &str) {
    // An upstream resolves dot segments itself: none may be on the wire, however spelled.
    for segment in uri.path().split('/').skip(1) {
        let decoded = percent_decode(segment);
        assert!(
            decoded != "." && decoded != "..",
            "dot segment in {uri} for {input:?}"
        );
    }
    // Re-parse the text that would go on the wire, as a URL parser would read it.
    let wire = url::Url::parse(&uri.to_string()).expect("a joined URI parses as a URL");
    let base_path = base.path().trim_end_matches('/');
    assert_eq!(wire.scheme(), base.scheme(), "scheme changed for {input:?}");
    assert_eq!(
        wire.host_str(),
        base.host_str(),
        "host changed for {input:?}"
    );
    assert_eq!(
        wire.port_or_known_default(),
        base.port_or_known_default(),
        "port changed for {input:?}"
    );
    assert!(
        wire.username().is_empty() && wire.password().is_none(),
        "credentials in {wire}"
    );
    assert!(
        wire.path().starts_with(&format!("{base_path}/")),
        "{wire} left {base} for {input:?}"
    );
    assert!(wire.fragment().is_none(), "fragment in {wire}");
    // After the base, no segment may be a dot segment once decoded.
    for segment in wire.path()[base_path.len() + 1..].split('/') {
        let decoded = percent_decode(segment);
        assert!(
            decoded != "." && decoded != "..",
            "dot segment in {wire} for {input:?}"
        );
    }
}

/// Percent-decodes `text` as a server would (invalid escapes stay as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The caller's path (first line) and query (second line): `normalize` never returns a path that
/// decodes to a dot segment or a separator, and `join` — alone or after `normalize` — never leaves
/// the base URL's origin or path.
pub fn proxy_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (raw, query) = match text.split_once('\n') {
        Some((raw, query)) => (raw, Some(query)),
        None => (text, None),
    };
    let normalized = path::normalize(raw);
    if let Ok(ok) = &normalized {
        assert!(!ok.is_empty() && ok.len() <= 4096);
        for segment in ok.split('/') {
            let decoded = percent_decode(segment);
            assert!(
                !segment.is_empty() && decoded != "." && decoded != "..",
                "normalize kept a dot or empty segment: {ok:?}"
            );
            assert!(
                !decoded.contains('/') && !decoded.contains('\\'),
                "normalize kept an encoded separator: {ok:?}"
            );
        }
        let _ = path::check_api_version(ok, &["v1"]);
        let _ = path::check_api_version(ok, &["v1.0", "beta"]);
    }
    for base in BASES {
        let base = url::Url::parse(base).expect("a fixed base");
        let joined = path::Base::new(&base).expect("a fixed base");
        if let Ok(ok) = &normalized
            && let Ok(uri) = path::join(&joined, ok, query)
        {
            assert_under(&base, &uri, raw);
        }
        // join() is the last line of defence: it must hold even for unnormalised input.
        if let Ok(uri) = path::join(&joined, raw, query) {
            assert_under(&base, &uri, raw);
        }
    }
}

const REQUEST_NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "connection",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "te",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

const RESPONSE_NEVER_RETURNED: &[&str] = &[
    "set-cookie",
    "connection",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

fn header_map(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

fn connection_names(map: &HeaderMap) -> Vec<String> {
    map.get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect()
}

fn assert_filtered(input: &HeaderMap, output: &HeaderMap, never: &[&str]) {
    let hop_by_hop = connection_names(input);
    for (name, value) in output {
        let name = name.as_str();
        assert!(!never.contains(&name), "{name} crossed the proxy");
        assert!(
            !name.starts_with("x-samgate-") && !name.starts_with("proxy-"),
            "{name} crossed the proxy"
        );
        assert!(
            !hop_by_hop.iter().any(|h| h == name),
            "{name}, listed in Connection, crossed the proxy"
        );
        assert!(
            input.get_all(name).iter().any(|v| v == value),
            "{name} was invented by the filter"
        );
    }
}

/// Header lines `name: value`: credentials, cookies, hop-by-hop and forwarding headers never
/// cross the proxy in either direction, and the filter never invents a header.
pub fn proxy_headers(data: &[u8]) {
    let input = header_map(data);
    assert_filtered(
        &input,
        &headers::request_headers(&input),
        REQUEST_NEVER_FORWARDED,
    );
    assert_filtered(
        &input,
        &headers::response_headers(input.clone()),
        RESPONSE_NEVER_RETURNED,
    );
}

// ---------------------------------------------------------------------------------------------
// OAuth callback parameters

/// What the callback's parameters look like to an independent parser (the oracle).
#[derive(serde::Deserialize)]
struct CallbackOracle {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

const MAX_CALLBACK_PARAM: usize = 8 * 1024;

/// The input as a query string and as a `form_post` body, through axum's own extractors into the
/// callback's parameter type: no panic, the length check agrees with an independent parse, and an
/// `error`/`error_description` pair is classified and explained without panicking.
pub fn oauth_callback(data: &[u8]) {
    let oracle: Option<CallbackOracle> = serde_urlencoded::from_bytes(data).ok();
    let expected_within = oracle.as_ref().map(|o| {
        [&o.state, &o.code, &o.error, &o.error_description]
            .iter()
            .all(|p| p.as_ref().is_none_or(|v| v.len() <= MAX_CALLBACK_PARAM))
    });

    // form_post: the body as Microsoft would POST it.
    let request = Request::builder()
        .method("POST")
        .uri("/oauth/callback")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(data.to_vec()))
        .expect("a fixed request");
    let form = block_on(axum::Form::<CallbackParams>::from_request(request, &()));
    if let Ok(axum::Form(params)) = &form
        && let Some(expected) = expected_within
    {
        assert_eq!(params.within_limits(), expected, "length check disagrees");
    }

    // response_mode=query: the same bytes after `?`, when they make a valid URI.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(uri) = format!("/oauth/callback?{text}").parse::<Uri>()
        && let Ok(Query(params)) = Query::<CallbackParams>::try_from_uri(&uri)
    {
        let _ = params.within_limits();
    }

    if let Some(CallbackOracle {
        error: Some(error),
        error_description,
        ..
    }) = &oracle
    {
        let classified = errors::classify_authorize_error(error, error_description.as_deref());
        assert!(!classified.advice.is_empty());
        let (title, message) = errors::partner_message(&classified);
        // Fixed texts per class (`&'static str`): nothing the sender wrote is echoed into the page.
        assert!(!title.is_empty() && !message.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// ID tokens

/// The client id the fuzzed tokens must be for.
pub const FUZZ_CLIENT_ID: Uuid = Uuid::from_u128(0x5a3e_6a7e_0000_4c9a_9d3e_0000_0000_c0de);
/// The nonce the fuzzed sign-in sent.
pub const FUZZ_NONCE: &str = "fuzz-nonce-0123456789";
/// The key id of the one published key.
pub const FUZZ_KID: &str = "fuzz-key-1";
/// The issuer template of the published key.
pub const FUZZ_ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";

/// The published key's RSA modulus (base64url); its private half exists nowhere in this repository.
const FUZZ_JWKS_N: &str = "u_c_uHD_-B7Op3-p8w5EXeodqEK1PcdRFf3JoXm-0tiZTycYmaHk7IFIFOSRmeQiCPUb3c3clyrEBqmmA4vxnm7socYewR4U3bAyRi0LwHEd9Xo919mJ7BbEoyei1dOvGWQnKvCgVYWI9eo2BaavhJ5x_yR06GMCpgL-I8rA2g_Nr9wpIHoGxIdy-ocOfz3PXLmPTqdiIIiWlP32sDqZwXLbO7D49h7gMHXugq2IIom2shJcQGCY90YMNmMuX-KY1N3FyQqBeaZf57hTWRdFWMHSf3DFhCxUv3dLakKVfI-4iQa57X0NNxy1RhKUa0SLRyXVw3eZwmF_bTGTawSnRw";

fn fuzz_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let jwks = serde_json::json!({
            "keys": [{ "kty": "RSA", "use": "sig", "kid": FUZZ_KID, "n": FUZZ_JWKS_N, "e": "AQAB" }]
        });
        KeySet::pinned(FUZZ_CLIENT_ID, FUZZ_ISSUER, jwks.to_string().as_bytes())
            .expect("a fixed JWKS")
    })
}

/// 2026-01-01T00:00:00Z: the fixed "now" of the fuzzed validations.
fn fuzz_now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("a fixed instant")
}

fn assert_refused(token: &str) {
    let verdict = block_on(fuzz_keys().validate(token, FUZZ_NONCE, fuzz_now()));
    assert!(
        verdict.is_err(),
        "an ID token was accepted without the private key: {token:?}"
    );
    // The unverified `amr` read of access tokens must not panic on the same input either.
    let _ = access_token_amr(&SecretString::from(token.to_owned()));
}

/// Nobody holds the private key of the pinned JWKS, so every token must be refused: the input
/// as a compact JWT, and the input split at `0xff` bytes into header, claims and signature that
/// are base64url-encoded and joined (so the fuzzer can reach claim validation).
pub fn id_token(data: &[u8]) {
    assert_refused(&String::from_utf8_lossy(data));
    let mut parts = data.splitn(3, |b| *b == 0xff);
    let header = parts.next().unwrap_or_default();
    let claims = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert_refused(&token);
}

// ---------------------------------------------------------------------------------------------
// Error bodies from Microsoft

/// First byte: HTTP status selector; second byte: flags (bit 0 `WWW-Authenticate: Bearer
/// error="invalid_token"`, bit 1 a `Retry-After` of the third byte); the rest: the body. The token
/// endpoint's error JSON and Partner Center's error response are parsed and classified without
/// panicking, and a classification always carries advice. (samgate parses no Graph error body:
/// Graph errors pass through the proxy unchanged.)
pub fn error_bodies(data: &[u8]) {
    let (status, flags, retry, body) = match data {
        [s, f, r, body @ ..] => (*s, *f, *r, body),
        _ => (0, 0, 0, data),
    };
    const STATUSES: [u16; 8] = [400, 401, 403, 404, 409, 429, 500, 503];
    let status = STATUSES[usize::from(status) % STATUSES.len()];

    // Token endpoint (identity platform).
    let token_body = serde_json::from_slice::<TokenErrorBody>(body)
        .unwrap_or_else(|_| TokenErrorBody::bare("temporarily_unavailable"));
    let classified = errors::classify(status, &token_body);
    assert!(!classified.advice.is_empty());
    if let Some(code) = classified.code
        && let Some((class, advice)) = errors::lookup_code(code)
    {
        assert_eq!(
            (classified.class, classified.advice),
            (class, advice),
            "a known AADSTS code was classified differently"
        );
    }
    let _ = errors::partner_message(&classified);

    // Partner Center.
    let mfa_code = serde_json::from_slice::<PartnerCenterErrorBody>(body)
        .ok()
        .and_then(|b| b.code)
        .is_some_and(|c| c == "900421");
    let mut response = axum::http::Response::builder().status(status);
    if flags & 1 == 1 {
        response = response.header("www-authenticate", "Bearer error=\"invalid_token\"");
    }
    if flags & 2 == 2 {
        response = response.header("retry-after", retry.to_string());
    }
    let response = response.body(body.to_vec()).expect("a fixed response");
    let error = block_on(partner_center::error_from(reqwest::Response::from(
        response,
    )));
    match error {
        partner_center::PartnerCenterError::TokenRejected { .. } => {
            assert!(
                status == 401 && (flags & 1 == 1 || mfa_code),
                "token rejection invented"
            );
        }
        partner_center::PartnerCenterError::InsufficientPrivileges { status: seen, .. } => {
            let denied = serde_json::from_slice::<PartnerCenterErrorBody>(body)
                .ok()
                .and_then(|b| b.description)
                .is_some_and(|d| d.contains("Authorization_RequestDenied"));
            assert!(
                seen == status && matches!(status, 400 | 403) && denied,
                "GDAP privilege refusal invented"
            );
        }
        partner_center::PartnerCenterError::Status {
            status: seen,
            retry_after,
            ..
        } => {
            assert_eq!(seen, status);
            assert_eq!(retry_after, (flags & 2 == 2).then_some(u64::from(retry)));
        }
        other => panic!("unexpected Partner Center error kind: {other:?}"),
    }
    let _ = partner_center::is_continuation_token(&String::from_utf8_lossy(body));
}

/// Paging links in a proxied answer (`proxy::links::rewrite`, one skipping pass that splices the
/// links' bytes). Input: any body. Invariants: a body is rewritten only when serde_json accepts it
/// as JSON, the rewrite is JSON, every link it wrote is on the samgate route, and putting the
/// original link strings back gives the original document.
pub fn proxy_links(data: &[u8]) {
    const ROUTE: &str = "https://samgate.example/api/v1/partners/p/x";
    let partner_center = url::Url::parse("https://api.partnercenter.microsoft.com").expect("fixed");
    let graph = url::Url::parse("https://graph.microsoft.com").expect("fixed");
    for (upstream, base) in [
        (Upstream::PartnerCenter, &partner_center),
        (Upstream::Graph, &graph),
    ] {
        let target = LinkTarget {
            upstream,
            upstream_base: base,
            route: ROUTE,
        };
        let Some(out) = rewrite(data, &target) else {
            continue;
        };
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
            "rewrote a body serde_json rejects"
        );
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok(),
            "the rewrite is not JSON"
        );
        // Documents with a lone surrogate escape or a number beyond f64 are JSON that `Value`
        // cannot hold; the splice itself is checked on every other one.
        let Ok(before) = serde_json::from_slice::<serde_json::Value>(data) else {
            continue;
        };
        let mut after: serde_json::Value =
            serde_json::from_slice(&out).expect("a rewrite of a document Value holds is one too");
        let restore = |link: &mut serde_json::Value, original: &serde_json::Value| {
            if link != original {
                let text = link.as_str().expect("a link became a non-string");
                assert!(text.starts_with(ROUTE), "a link left the route: {text}");
                *link = original.clone();
            }
        };
        let object = after.as_object_mut().expect("rewrote a non-object");
        match upstream {
            Upstream::PartnerCenter => {
                if let Some(links) = object.get_mut("links").and_then(|l| l.as_object_mut()) {
                    for (name, link) in links {
                        if let Some(uri) = link.get_mut("uri") {
                            restore(uri, &before["links"][name.as_str()]["uri"]);
                        }
                    }
                }
            }
            Upstream::Graph => {
                for (name, link) in object.iter_mut() {
                    if name.ends_with("@odata.nextLink") || name.ends_with("@odata.deltaLink") {
                        restore(link, &before[name.as_str()]);
                    }
                }
            }
        }
        assert_eq!(before, after, "a rewrite changed more than links");
    }
}
