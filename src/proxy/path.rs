//! Normalisation of the caller-supplied part of a proxied path. The upstream host and prefix are
//! fixed by configuration; the caller only chooses what comes after, and may not escape it.

/// Why a proxied path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `.`/`..` segments, encoded separators or dots, backslashes, empty segments, control bytes,
    /// or an absolute URL.
    #[error("the path may not contain dot segments, encoded separators, backslashes or a scheme")]
    Escapes,
    /// Nothing after the prefix.
    #[error("the path is empty")]
    Empty,
    /// Longer than upstreams accept.
    #[error("the path is too long")]
    TooLong,
    /// Not under the upstream's API version prefix.
    #[error(
        "the path must start with the API version (v1/ for Partner Center, v1.0/ or beta/ for Graph)"
    )]
    NotAnApiPath,
}

const MAX_PATH: usize = 4096;

/// Checks the raw (still percent-encoded) remainder of a request path, e.g. `v1/customers/abc`,
/// and returns it unchanged when it is safe to append to an upstream base URL.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    if raw.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if raw
        .bytes()
        .any(|b| b.is_ascii_control() || b == b'\\' || b == b' ' || b == b'#' || b == b'?')
    {
        return Err(PathError::Escapes);
    }
    // Encoded '/', '\', '.', '%' (double encoding) and NUL never appear in legitimate Partner
    // Center or Graph paths; refusing them closes every decode-then-escape trick.
    let bytes = raw.as_bytes();
    for at in memchr::memchr_iter(b'%', bytes) {
        if let Some(&[high, low]) = bytes.get(at + 1..at + 3) {
            let code = [high.to_ascii_lowercase(), low.to_ascii_lowercase()];
            if matches!(&code, b"2f" | b"5c" | b"2e" | b"25" | b"00") {
                return Err(PathError::Escapes);
            }
        }
    }
    if memchr::memmem::find(bytes, b"://").is_some() || raw.starts_with('/') {
        return Err(PathError::Escapes);
    }
    // Empty segments are dropped: Microsoft's Python Graph SDK (kiota-http with an httpx base URL
    // that ends in `/`) asks for `v1.0//users`, which means `v1.0/users`. An empty segment cannot
    // climb, so dropping it changes nothing else.
    let mut path = String::with_capacity(raw.len());
    for segment in raw.split('/') {
        if segment == "." || segment == ".." {
            return Err(PathError::Escapes);
        }
        if !segment.is_empty() {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(segment);
        }
    }
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(path)
}

/// Partner Center's REST API lives under `v1/`, Graph's under `v1.0/` and `beta/`: a path
/// outside those is not an API call (and may be something else on the same host).
pub fn check_api_version(path: &str, allowed: &[&str]) -> Result<(), PathError> {
    let first = path.split('/').next().unwrap_or("");
    if allowed.contains(&first) {
        Ok(())
    } else {
        Err(PathError::NotAnApiPath)
    }
}

/// An upstream's base URL, taken apart once so each call only appends to it.
#[derive(Debug, Clone)]
pub struct Base {
    /// `scheme://authority/prefix` without a trailing slash.
    text: String,
    scheme: axum::http::uri::Scheme,
    authority: axum::http::uri::Authority,
    /// The base's path without a trailing slash (`""` or `/graph`).
    path: String,
}

impl Base {
    /// Takes `base` apart; `None` for a URL an `http::Uri` cannot hold (no host, say).
    pub fn new(base: &url::Url) -> Option<Self> {
        let text = base.as_str().trim_end_matches('/').to_owned();
        let parsed: axum::http::Uri = text.parse().ok()?;
        Some(Self {
            scheme: parsed.scheme()?.clone(),
            authority: parsed.authority()?.clone(),
            path: base.path().trim_end_matches('/').to_owned(),
            text,
        })
    }
}

/// Joins a base and a normalised path into the URI sent upstream, and checks that it stays on
/// the base's origin and under its path. It is the last line of defence, so it holds even for a
/// path [`normalize`] never saw: no dot segment (encoded or not), no backslash, fragment,
/// whitespace or control byte gets through, and nothing that would change the authority.
pub fn join(base: &Base, path: &str, query: Option<&str>) -> Result<axum::http::Uri, PathError> {
    let unsafe_byte =
        |b: u8| b.is_ascii_control() || b == b'\\' || b == b' ' || b == b'#' || !b.is_ascii();
    if path.bytes().any(|b| unsafe_byte(b) || b == b'?')
        || path.split('/').any(is_dot_segment)
        || query.is_some_and(|q| q.bytes().any(unsafe_byte))
    {
        return Err(PathError::Escapes);
    }
    let mut text =
        String::with_capacity(base.text.len() + path.len() + 2 + query.map_or(0, str::len));
    text.push_str(&base.text);
    text.push('/');
    text.push_str(path);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        text.push('?');
        text.push_str(query);
    }
    let uri: axum::http::Uri = text.parse().map_err(|_| PathError::Escapes)?;
    let stays = uri.scheme() == Some(&base.scheme)
        && uri.authority() == Some(&base.authority)
        && uri
            .path()
            .strip_prefix(base.path.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
    if stays {
        Ok(uri)
    } else {
        Err(PathError::Escapes)
    }
}

/// `.` or `..`, however its dots are spelled (`%2e`, `%2E`).
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2] | 0x20 == b'e' {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_partner_center_and_graph_paths_pass_unchanged() {
        for path in [
            "v1/customers",
            "v1/customers/0a1b2c3d-0000-4000-8000-000000000001/subscriptions",
            "v1.0/users",
            "v1/customers/abc/applicationconsents/5a3e6a7e-0000-4c9a-9d3e-00000000c0de",
            "v1.0/users/alex%40contoso.com",
        ] {
            assert_eq!(normalize(path).as_deref(), Ok(path));
        }
    }

    #[test]
    fn empty_segments_are_dropped_as_the_python_graph_sdk_sends_them() {
        assert_eq!(normalize("v1.0//users").as_deref(), Ok("v1.0/users"));
        assert_eq!(normalize("v1//customers/").as_deref(), Ok("v1/customers"));
        assert_eq!(normalize("/").map_err(|_| ()), Err(()));
    }

    #[test]
    fn escapes_are_refused() {
        for path in [
            "",
            "..",
            "v1/../admin",
            "v1/./customers",
            "v1/%2e%2e/x",
            "v1/%2E%2e/x",
            "v1%2fcustomers",
            "v1/%5c..",
            "v1/%5C..",
            "v1/x%2F",
            "v1/%25",
            "v1/a:b://c",
            "v1\\..\\x",
            "v1/%252e%252e/x",
            "https://evil.example/x",
            "//evil.example/x",
            "v1/customers%00",
            "v1/cust omers",
            "v1/x#frag",
            "v1/x?y=1",
            "v1/\u{7f}",
        ] {
            assert!(normalize(path).is_err(), "{path:?} must be refused");
        }
    }

    #[test]
    fn only_api_version_prefixes_are_forwarded() {
        assert!(check_api_version("v1/customers", &["v1"]).is_ok());
        assert!(check_api_version("v1.0/users", &["v1.0", "beta"]).is_ok());
        for path in ["_emulator/counters", "v2/x", "v1.0", "V1/customers"] {
            assert_eq!(
                check_api_version(path, &["v1"]),
                Err(PathError::NotAnApiPath),
                "{path}"
            );
        }
    }

    #[test]
    fn joined_urls_stay_under_the_base() {
        let base = |url: &str| Base::new(&url::Url::parse(url).expect("url")).expect("base");
        let pc = base("https://api.partnercenter.microsoft.com");
        let uri = join(&pc, "v1/customers", Some("size=10")).expect("join");
        assert_eq!(
            uri.to_string(),
            "https://api.partnercenter.microsoft.com/v1/customers?size=10"
        );
        let graph = base("http://127.0.0.1:9/graph/");
        assert_eq!(
            join(&graph, "v1.0/users", None).expect("join").to_string(),
            "http://127.0.0.1:9/graph/v1.0/users"
        );
        // A path that normalize() would refuse cannot sneak through join() either.
        for refused in [
            "../x",
            "v1.0/%2E%2e/x",
            "v1.0/./x",
            "v1.0\\..\\x",
            "v1.0/x#y",
            "v1.0/x?y",
        ] {
            assert_eq!(
                join(&graph, refused, None),
                Err(PathError::Escapes),
                "{refused}"
            );
        }
        assert_eq!(
            join(&graph, "v1.0/x", Some("a=1#f")),
            Err(PathError::Escapes)
        );
        assert!(
            join(&pc, "@evil.example/x", None)
                .is_ok_and(|u| u.host() == Some("api.partnercenter.microsoft.com"))
        );
        // A base path is a prefix of whole segments: `/graphx` is not under `/graph`.
        assert_eq!(
            join(&graph, "v1.0/users", Some("x")).expect("join").path(),
            "/graph/v1.0/users"
        );
    }

    /// Percent-decodes one segment as an upstream server would.
    fn decoded(segment: &str) -> String {
        let bytes = segment.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
            match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn segment() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("".to_owned()),
            Just("%2e%2e".to_owned()),
            Just("%2E.".to_owned()),
            Just(".%2e".to_owned()),
            Just("%2f".to_owned()),
            Just("%2F..".to_owned()),
            Just("%5c".to_owned()),
            Just("%252e%252e".to_owned()),
            Just("\\..".to_owned()),
            Just("..\\".to_owned()),
            Just("\u{ff0e}\u{ff0e}".to_owned()),
            Just("\u{2025}".to_owned()),
            Just("@evil.example".to_owned()),
            Just("http:".to_owned()),
            Just("//evil.example".to_owned()),
            Just("%00".to_owned()),
            Just("v1".to_owned()),
            Just("v1.0".to_owned()),
            Just("customers".to_owned()),
            "[a-zA-Z0-9._~%:@!$&'()*+,;=-]{1,8}",
            "\\PC{1,4}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn no_normalised_path_leaves_its_base(
            segments in proptest::collection::vec(segment(), 1..8),
            leading_slash in proptest::prelude::any::<bool>(),
            query in proptest::option::of("[a-z=&%./?#]{0,12}"),
        ) {
            let raw = format!("{}{}", if leading_slash { "/" } else { "" }, segments.join("/"));
            for base in [
                "https://api.partnercenter.microsoft.com",
                "https://graph.microsoft.com/",
                "http://127.0.0.1:9/graph",
                "http://127.0.0.1:9/deep/base/",
            ] {
                let base = url::Url::parse(base).expect("base");
                let joined = Base::new(&base).expect("base");
                let base_path = base.path().trim_end_matches('/').to_owned();
                // The raw URI as it goes on the wire: no dot segment however spelled, and read by
                // a URL parser it stays on the base's origin and under its path.
                let under = |uri: &axum::http::Uri| {
                    let raw_clean = uri.path().split('/').all(|s| decoded(s) != ".." && decoded(s) != ".");
                    let Ok(url) = url::Url::parse(&uri.to_string()) else { return false };
                    raw_clean && url.origin() == base.origin()
                        && url.path().starts_with(&format!("{base_path}/"))
                        && url.fragment().is_none()
                        && url.path()[base_path.len() + 1..]
                            .split('/')
                            .all(|s| decoded(s) != ".." && decoded(s) != ".")
                };
                if let Ok(normalized) = normalize(&raw) {
                    for s in normalized.split('/') {
                        let d = decoded(s);
                        proptest::prop_assert!(!s.is_empty() && d != "." && d != "..", "{raw:?}");
                        proptest::prop_assert!(!d.contains('/') && !d.contains('\\'), "{raw:?}");
                    }
                    match join(&joined, &normalized, query.as_deref()) {
                        Ok(url) => proptest::prop_assert!(under(&url), "{raw:?} -> {url}"),
                        // A normalised path may still be refused (e.g. a query with '#'), never escape.
                        Err(e) => proptest::prop_assert_eq!(e, PathError::Escapes),
                    }
                }
                // join() on its own, without normalize(), still never leaves the base.
                if let Ok(url) = join(&joined, &raw, query.as_deref()) {
                    proptest::prop_assert!(under(&url), "{raw:?} -> {url}");
                }
            }
        }
    }
}
