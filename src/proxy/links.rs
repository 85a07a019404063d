//! Links that stay on samgate: paging links in proxied JSON answers are rewritten from the
//! upstream to the samgate route they came through (same partner, same customer), so a caller —
//! above all an official SDK's page iterator, which follows `@odata.nextLink` verbatim and asks its
//! token provider for a token for that link's host — never sends samgate's API key to Microsoft
//! and never leaves samgate.
//!
//! Rewritten: Graph's top-level `@odata.nextLink` / `@odata.deltaLink` (and `<property>@odata.nextLink`)
//! when they point under the configured Graph base; Partner Center's top-level `links.*.uri`
//! (relative to the API root, with or without `v1/`, or absolute under the Partner Center base).
//! Everything else in the body keeps its bytes: only the top level is parsed, other values are
//! copied verbatim. Links elsewhere (another host, a non-API path) are left as they are; item-level
//! `links.self` of Partner Center collections stay relative (no iterator follows them).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use url::Url;

use super::Upstream;

/// Where links of one proxied answer go.
#[derive(Debug, Clone)]
pub struct LinkTarget<'a> {
    /// Which upstream answered.
    pub upstream: Upstream,
    /// The upstream's configured base URL.
    pub upstream_base: &'a Url,
    /// The samgate route the call came through, absolute, up to and without the upstream path,
    /// e.g. `https://samgate.example/api/v1/partners/{tid}/graph`.
    pub route: &'a str,
}

/// The members of one JSON object, in order: each name (decoded) and its value, unparsed. Values
/// borrow the body, so where each one sits in it is known without a second pass.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Object<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::new();
                while let Some(name) = map.next_key_seed(Name(std::marker::PhantomData))? {
                    members.push((name, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Object(std::marker::PhantomData))
    }
}

/// A member name or string value: borrowed from the body when it holds no escapes, decoded
/// otherwise.
struct Name<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::DeserializeSeed<'de> for Name<'a> {
    type Value = Cow<'a, str>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Name<'a> {
    type Value = Cow<'a, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }
}

/// The members of the object `raw`, or `None` when it is not an object.
fn members(raw: &RawValue) -> Option<Members<'_>> {
    serde_json::from_str(raw.get()).ok()
}

/// The string `raw` holds, or `None` when it is not a string.
fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde::de::DeserializeSeed::deserialize(Name(std::marker::PhantomData), &mut deserializer).ok()
}

/// A replacement: the bytes of `raw` (a value inside the body) give way to the JSON string `link`.
struct Splice<'a> {
    raw: &'a RawValue,
    link: String,
}

/// The body with its paging links pointed at samgate, or `None` when there is nothing to change
/// (not a JSON object, or no link into the upstream). Only the links' own bytes change: every
/// other byte of the body, including the rest of Partner Center's `links` object, is kept as
/// Microsoft sent it.
pub fn rewrite(body: &[u8], target: &LinkTarget<'_>) -> Option<Vec<u8>> {
    // Most answers carry no paging link: a byte search is far cheaper than parsing them.
    let marker: &[&[u8]] = match target.upstream {
        Upstream::Graph => &[b"@odata.nextLink", b"@odata.deltaLink"],
        Upstream::PartnerCenter => &[b"\"links\""],
    };
    if !marker
        .iter()
        .any(|m| memchr::memmem::find(body, m).is_some())
    {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let Members(top) = serde_json::from_str(text).ok()?;
    let mut splices = Vec::new();
    for (name, value) in &top {
        match target.upstream {
            Upstream::Graph if is_graph_link(name) => {
                if let Some(link) = string(value).and_then(|link| graph_link(&link, target)) {
                    splices.push(Splice { raw: value, link });
                }
            }
            Upstream::PartnerCenter if name == "links" => {
                partner_center_links(value, target, &mut splices);
            }
            _ => {}
        }
    }
    if splices.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + splices.len() * target.route.len());
    let mut copied = 0;
    for Splice { raw, link } in splices {
        // Every value borrows `text`, in order: its offset is where its bytes start.
        let at = (raw.get().as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
        if at < copied || at + raw.get().len() > body.len() {
            return None;
        }
        out.extend_from_slice(&body[copied..at]);
        serde_json::to_writer(&mut out, &link).ok()?;
        copied = at + raw.get().len();
    }
    out.extend_from_slice(&body[copied..]);
    Some(out)
}

fn is_graph_link(key: &str) -> bool {
    key.ends_with("@odata.nextLink") || key.ends_with("@odata.deltaLink")
}

/// A Graph link under the Graph base, as the same link through samgate.
fn graph_link(link: &str, target: &LinkTarget<'_>) -> Option<String> {
    let url = Url::parse(link).ok()?;
    let base = target.upstream_base;
    if url.origin() != base.origin() {
        return None;
    }
    let base_path = base.path().trim_end_matches('/');
    let rest = url.path().strip_prefix(base_path)?.strip_prefix('/')?;
    if !Upstream::Graph
        .api_versions()
        .contains(&rest.split('/').next().unwrap_or(""))
    {
        return None;
    }
    Some(join(target.route, rest, url.query()))
}

/// Each `*.uri` of Partner Center's `links` object that points into Partner Center, through
/// samgate.
fn partner_center_links<'a>(
    value: &'a RawValue,
    target: &LinkTarget<'_>,
    splices: &mut Vec<Splice<'a>>,
) {
    let Some(Members(links)) = members(value) else {
        return;
    };
    for (_, link) in links {
        let Some(Members(fields)) = members(link) else {
            continue;
        };
        for (name, uri) in fields {
            if name != "uri" {
                continue;
            }
            if let Some(through) = string(uri).and_then(|text| partner_center_link(&text, target)) {
                splices.push(Splice {
                    raw: uri,
                    link: through,
                });
            }
        }
    }
}

/// A Partner Center link (relative to the API root, or absolute under the base) through samgate.
fn partner_center_link(uri: &str, target: &LinkTarget<'_>) -> Option<String> {
    if uri.bytes().any(|b| b.is_ascii_control()) || uri.starts_with("//") {
        return None;
    }
    let relative = match Url::parse(uri) {
        Ok(absolute) => {
            let base = target.upstream_base;
            if absolute.origin() != base.origin() {
                return None;
            }
            let base_path = base.path().trim_end_matches('/');
            let path = absolute.path().strip_prefix(base_path)?;
            match absolute.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            }
        }
        Err(_) => uri.to_owned(),
    };
    let relative = relative.trim_start_matches('/');
    let (path, query) = match relative.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (relative, None),
    };
    let path = if path.starts_with("v1/") || path == "v1" {
        path.to_owned()
    } else {
        format!("v1/{path}")
    };
    Some(join(target.route, &path, query))
}

fn join(route: &str, path: &str, query: Option<&str>) -> String {
    let mut link = format!("{}/{path}", route.trim_end_matches('/'));
    if let Some(query) = query {
        link.push('?');
        link.push_str(query);
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_target<'a>(base: &'a Url, route: &'a str) -> LinkTarget<'a> {
        LinkTarget {
            upstream: Upstream::Graph,
            upstream_base: base,
            route,
        }
    }

    fn partner_center_target<'a>(base: &'a Url, route: &'a str) -> LinkTarget<'a> {
        LinkTarget {
            upstream: Upstream::PartnerCenter,
            upstream_base: base,
            route,
        }
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("rewritten body is JSON")
    }

    #[test]
    fn graph_next_and_delta_links_point_at_the_samgate_route_and_the_rest_keeps_its_bytes() {
        let base = Url::parse("https://graph.microsoft.com").expect("url");
        let route = "https://samgate.example/api/v1/partners/p/customers/c/graph";
        let body = br#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users","@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$top=2&$skiptoken=RFNwdAIAAQAAAB8","value":[{"id":"1","big":12345678901234567890123,"web":"https://graph.microsoft.com/v1.0/users"}],"members@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/g/members?$skiptoken=x","@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc"}"#;
        let out = rewrite(body, &graph_target(&base, route)).expect("links changed");
        let text = String::from_utf8(out.clone()).expect("utf-8");
        let value = json(&out);
        assert_eq!(
            value["@odata.nextLink"],
            format!("{route}/v1.0/users?$top=2&$skiptoken=RFNwdAIAAQAAAB8")
        );
        assert_eq!(
            value["@odata.deltaLink"],
            format!("{route}/v1.0/users/delta?$deltatoken=abc")
        );
        assert_eq!(
            value["members@odata.nextLink"],
            format!("{route}/v1.0/groups/g/members?$skiptoken=x")
        );
        // Data is not links: kept byte for byte (a number beyond f64, a URL inside an item).
        assert!(
            text.contains(r#"[{"id":"1","big":12345678901234567890123,"web":"https://graph.microsoft.com/v1.0/users"}]"#),
            "{text}"
        );
        assert_eq!(
            value["@odata.context"],
            "https://graph.microsoft.com/v1.0/$metadata#users"
        );
        // Key order is kept.
        assert!(text.starts_with(r#"{"@odata.context":"#), "{text}");
    }

    #[test]
    fn links_to_other_hosts_or_outside_the_api_and_non_json_bodies_are_left_alone() {
        let base = Url::parse("https://graph.microsoft.com").expect("url");
        let route = "https://samgate.example/api/v1/partners/p/graph";
        let target = graph_target(&base, route);
        for body in [
            &br#"{"@odata.nextLink":"https://evil.example/v1.0/users?$skiptoken=x"}"#[..],
            br#"{"@odata.nextLink":"http://graph.microsoft.com/v1.0/users"}"#,
            br#"{"@odata.nextLink":"https://graph.microsoft.com/other/users"}"#,
            br#"{"value":[]}"#,
            br#"[1,2,3]"#,
            b"not json",
            br#"{"@odata.nextLink": 5}"#,
        ] {
            assert!(
                rewrite(body, &target).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn partner_center_links_with_or_without_v1_or_absolute_become_samgate_links() {
        let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
        let route = "https://samgate.example/api/v1/partners/p/partner-center";
        let target = partner_center_target(&base, route);
        for uri in [
            "/v1/customers?size=500&seekOperation=Next",
            "/customers?size=500&seekOperation=Next",
            "customers?size=500&seekOperation=Next",
            "https://api.partnercenter.microsoft.com/v1/customers?size=500&seekOperation=Next",
        ] {
            let body = serde_json::json!({
                "totalCount": 1,
                "items": [{"id": "c", "links": {"self": {"uri": "/customers/c"}}}],
                "links": {
                    "self": {"uri": "/customers?size=500", "method": "GET", "headers": []},
                    "next": {"uri": uri, "method": "GET", "headers": [{"key": "MS-ContinuationToken", "value": "a,b/c+d="}]}
                },
                "attributes": {"objectType": "Collection"}
            });
            let out = rewrite(body.to_string().as_bytes(), &target).expect("links changed");
            let value = json(&out);
            assert_eq!(
                value["links"]["next"]["uri"],
                format!("{route}/v1/customers?size=500&seekOperation=Next"),
                "{uri}"
            );
            assert_eq!(
                value["links"]["self"]["uri"],
                format!("{route}/v1/customers?size=500")
            );
            // The continuation header travels unchanged; items keep their relative links.
            assert_eq!(value["links"]["next"]["headers"][0]["value"], "a,b/c+d=");
            assert_eq!(value["items"][0]["links"]["self"]["uri"], "/customers/c");
        }
        let foreign = br#"{"links":{"next":{"uri":"https://evil.example/v1/customers"}}}"#;
        assert!(rewrite(foreign, &target).is_none());
        let network_path = br#"{"links":{"next":{"uri":"//evil.example/v1/customers"}}}"#;
        assert!(rewrite(network_path, &target).is_none());
    }

    #[test]
    fn only_the_link_strings_change_and_every_other_byte_stays_as_microsoft_sent_it() {
        let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
        let route = "https://samgate.example/api/v1/partners/p/partner-center";
        let target = partner_center_target(&base, route);
        // Spacing, member order inside `links`, an escaped name and a number beyond f64.
        let body = br#"{ "totalCount" : 12345678901234567890123,
  "links" : { "next" : { "headers" : [ {"key":"MS-ContinuationToken","value":"t"} ], "method":"GET", "uri" : "/customers?size=1" },
              "self" : { "uri":"\/v1\/customers" } },
  "na\u006de" : "x" }"#;
        let out = rewrite(body, &target).expect("links changed");
        let expected = format!(
            r#"{{ "totalCount" : 12345678901234567890123,
  "links" : {{ "next" : {{ "headers" : [ {{"key":"MS-ContinuationToken","value":"t"}} ], "method":"GET", "uri" : "{route}/v1/customers?size=1" }},
              "self" : {{ "uri":"{route}/v1/customers" }} }},
  "na\u006de" : "x" }}"#
        );
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
    }
}
