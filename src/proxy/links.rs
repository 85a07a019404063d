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
use std::ops::Range;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
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

/// A replacement: the bytes at `range` (a JSON string inside the body) give way to the JSON
/// string `link`.
struct Splice {
    range: Range<usize>,
    link: String,
}

/// The body with its paging links pointed at samgate, or `None` when there is nothing to change
/// (not a JSON object, not valid JSON, or no link into the upstream). Only the links' own bytes
/// change: every other byte of the body, including the rest of Partner Center's `links` object,
/// is kept as Microsoft sent it.
///
/// One pass of serde_json over the body: values that are not links are skipped without being
/// built, and each link's place is known from the `RawValue` it is read as, so nothing is parsed
/// twice (≈830 ns instead of ≈1,080 ns for a one-customer Partner Center page, the same as before
/// for a 500-customer one; BENCHMARKS.md). The body must be JSON as serde_json reads it: UTF-8 is
/// checked up front, and nothing but whitespace may follow the object. (Like every skipping
/// reader, serde_json does not pair the surrogate escapes of strings it skips: such a string is
/// passed on as Microsoft wrote it, as every byte that is not a link is.)
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
    let splices = find_links(text, target).ok()?;
    if splices.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + splices.len() * target.route.len());
    let mut copied = 0;
    for Splice { range, link } in splices {
        // Ranges come from one forward pass: in order, inside the body, never overlapping.
        if range.start < copied || range.end > body.len() {
            return None;
        }
        out.extend_from_slice(&body[copied..range.start]);
        serde_json::to_writer(&mut out, &link).ok()?;
        copied = range.end;
    }
    out.extend_from_slice(&body[copied..]);
    Some(out)
}

/// What a top-level member is to the rewrite.
#[derive(Clone, Copy)]
enum Member {
    /// Graph's `@odata.nextLink`, `@odata.deltaLink`, `<property>@odata.nextLink`.
    GraphLink,
    /// Partner Center's `links` object.
    PartnerCenterLinks,
    Other,
}

impl Member {
    fn of(name: &str, upstream: Upstream) -> Self {
        match upstream {
            Upstream::Graph if is_graph_link(name) => Self::GraphLink,
            Upstream::PartnerCenter if name == "links" => Self::PartnerCenterLinks,
            _ => Self::Other,
        }
    }
}

/// Every link of the top-level object `text` that points into the upstream, with where it sits.
///
/// A link's members are read as values (`deserialize_any`), so a number serde_json can skip but
/// not hold (`1e400`) beside or inside one fails the pass. Such a body, or one that is not JSON,
/// is read a second time with each link parsed on its own, so a member that is no link cannot keep
/// the real ones pointing at Microsoft; the common body pays for one pass only.
fn find_links(text: &str, target: &LinkTarget<'_>) -> serde_json::Result<Vec<Splice>> {
    find_links_once(text, target, false).or_else(|_| find_links_once(text, target, true))
}

fn find_links_once(
    text: &str,
    target: &LinkTarget<'_>,
    each_link_alone: bool,
) -> serde_json::Result<Vec<Splice>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut found = Found {
        text,
        target,
        each_link_alone,
        splices: Vec::new(),
    };
    serde::Deserializer::deserialize_map(&mut deserializer, TopLevel(&mut found))?;
    deserializer.end()?;
    Ok(found.splices)
}

/// What one pass over the body has found so far.
struct Found<'t, 'a> {
    text: &'t str,
    target: &'a LinkTarget<'a>,
    /// Whether each Partner Center link is parsed on its own (see [`find_links`]).
    each_link_alone: bool,
    splices: Vec<Splice>,
}

impl Found<'_, '_> {
    /// Notes a splice when `raw` (a value inside the body) is a string that `through` turns into a
    /// samgate link.
    fn link(
        &mut self,
        raw: &RawValue,
        through: impl FnOnce(&str, &LinkTarget<'_>) -> Option<String>,
    ) {
        let Some(text) = string(raw) else {
            return;
        };
        let Some(link) = through(&text, self.target) else {
            return;
        };
        // Every value borrows the body: its offset is where its bytes start.
        let Some(start) = (raw.get().as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)
        else {
            return;
        };
        self.splices.push(Splice {
            range: start..start + raw.get().len(),
            link,
        });
    }
}

/// A value that is not an object where links were expected: consumed whole, nothing noted.
macro_rules! any_other_value_is_skipped {
    () => {
        fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(())
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

/// The next value, whatever its type, read by the visitor `V` (which skips what is no link).
struct AnyValue<V>(V);

impl<'de, V: Visitor<'de, Value = ()>> DeserializeSeed<'de> for AnyValue<V> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self.0)
    }
}

/// The top-level object: links are read, every other member skipped without being built.
struct TopLevel<'f, 't, 'a>(&'f mut Found<'t, 'a>);

impl<'de> Visitor<'de> for TopLevel<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let upstream = self.0.target.upstream;
        while let Some(name) = map.next_key_seed(Name(std::marker::PhantomData))? {
            match Member::of(&name, upstream) {
                Member::GraphLink => {
                    let raw: &'de RawValue = map.next_value()?;
                    self.0.link(raw, graph_link);
                }
                Member::PartnerCenterLinks => map.next_value_seed(AnyValue(Links(&mut *self.0)))?,
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Partner Center's `links` object: each member that is an object is a link.
struct Links<'f, 't, 'a>(&'f mut Found<'t, 'a>);

impl<'de> Visitor<'de> for Links<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Partner Center links")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            if self.0.each_link_alone {
                let raw: &'de RawValue = map.next_value()?;
                let mut link = serde_json::Deserializer::from_str(raw.get());
                let _ = serde::Deserializer::deserialize_any(&mut link, Link(&mut *self.0));
            } else {
                map.next_value_seed(AnyValue(Link(&mut *self.0)))?;
            }
        }
        Ok(())
    }
    any_other_value_is_skipped!();
}

/// One Partner Center link: its `uri` is read, everything else skipped.
struct Link<'f, 't, 'a>(&'f mut Found<'t, 'a>);

impl<'de> Visitor<'de> for Link<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Partner Center link")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(name) = map.next_key_seed(Name(std::marker::PhantomData))? {
            if name == "uri" {
                let raw: &'de RawValue = map.next_value()?;
                self.0.link(raw, partner_center_link);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    any_other_value_is_skipped!();
}

/// A member name or string value: borrowed from the body when it holds no escapes, decoded
/// otherwise.
struct Name<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for Name<'a> {
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

/// The string `raw` holds, or `None` when it is not a string.
fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    DeserializeSeed::deserialize(Name(std::marker::PhantomData), &mut deserializer).ok()
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

    const PAGE: &str = r#"{"totalCount":2,"items":[{"id":"a","name":"Fabrikam \"EU\" \u00e9","n":-1.5e3,"ok":true,"none":null,"links":{"self":{"uri":"/customers/a"}}}],"links":{"next":{"uri":"/customers?size=1","method":"GET","headers":[{"key":"MS-ContinuationToken","value":"c"}]}},"attributes":{"objectType":"Collection"}}"#;

    #[test]
    fn a_body_that_is_not_valid_json_anywhere_keeps_every_byte() {
        let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
        let route = "https://samgate.example/api/v1/partners/p/partner-center";
        let target = partner_center_target(&base, route);
        assert!(
            rewrite(PAGE.as_bytes(), &target).is_some(),
            "the valid page is rewritten"
        );
        let tail = PAGE.strip_prefix('{').expect("object");
        for body in [
            format!("{PAGE} trailing"),
            format!("{PAGE}{{}}"),
            PAGE.replace(r#""ok":true"#, r#""ok":tru"#),
            PAGE.replace(r#""n":-1.5e3"#, r#""n":01"#),
            PAGE.replace(r#""n":-1.5e3"#, r#""n":NaN"#),
            PAGE.replace(r#"\u00e9"#, r#"\x"#),
            PAGE.replace(r#""attributes""#, r#""attributes"   "#)
                .replace(':', ""),
            PAGE.replace(
                r#"{"objectType":"Collection"}"#,
                r#"{"objectType":"Collection""#,
            ),
            PAGE.replace("},\"attributes\"", "}\"attributes\""),
            format!("{{\"a\":\"\u{1}\",{tail}"),
            format!("[{PAGE}]"),
        ] {
            assert!(rewrite(body.as_bytes(), &target).is_none(), "{body}");
        }
        // A lone surrogate escape in a skipped string is not a link: it travels as it came.
        let lone = PAGE.replace(r#"\u00e9"#, r#"\ud800x"#);
        let out = rewrite(lone.as_bytes(), &target).expect("links changed");
        assert!(
            String::from_utf8(out)
                .expect("utf-8")
                .contains(r#"\ud800x"#)
        );
        let mut invalid_utf8 = PAGE.as_bytes().to_vec();
        let at = PAGE.find("Fabrikam").expect("name");
        invalid_utf8[at] = 0xff;
        assert!(rewrite(&invalid_utf8, &target).is_none());
    }

    #[test]
    fn links_that_are_not_objects_or_strings_are_skipped_and_the_rest_still_rewritten() {
        let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
        let route = "https://samgate.example/api/v1/partners/p/partner-center";
        let target = partner_center_target(&base, route);
        let body = br#"{"links":{"a":[{"uri":"/x"}],"b":"/y","c":{"uri":5},"d":{"uri":{"uri":"/z"}},"next":{"uri":"/customers"}},"links2":{"next":{"uri":"/w"}}}"#;
        let out = rewrite(body, &target).expect("next rewritten");
        let value = json(&out);
        assert_eq!(
            value["links"]["next"]["uri"],
            format!("{route}/v1/customers")
        );
        assert_eq!(value["links"]["a"][0]["uri"], "/x");
        assert_eq!(value["links"]["b"], "/y");
        assert_eq!(value["links"]["c"]["uri"], 5);
        assert_eq!(value["links"]["d"]["uri"]["uri"], "/z");
        assert_eq!(value["links2"]["next"]["uri"], "/w");
    }

    #[test]
    fn a_number_serde_json_cannot_hold_beside_a_link_does_not_stop_the_rewrite() {
        let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
        let route = "https://samgate.example/api/v1/partners/p/partner-center";
        let target = partner_center_target(&base, route);
        let body = br#"{"n":1e400,"links":{"e":1e400,"f":{"x":1e400,"uri":"/v"},"next":{"uri":"/customers"}}}"#;
        let out = rewrite(body, &target).expect("links changed");
        let expected = format!(
            r#"{{"n":1e400,"links":{{"e":1e400,"f":{{"x":1e400,"uri":"{route}/v1/v"}},"next":{{"uri":"{route}/v1/customers"}}}}}}"#
        );
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
    }

    proptest::proptest! {
        /// Whatever a byte-level mutation of a real page does, a body is rewritten only when
        /// serde_json accepts it, the result parses too, and only link strings changed.
        #[test]
        fn a_rewrite_happens_only_to_valid_json_and_changes_only_links(
            cut in 0..PAGE.len() + 1,
            at in 0..PAGE.len(),
            byte in proptest::prelude::any::<u8>(),
            mutate in proptest::prelude::any::<bool>(),
        ) {
            let base = Url::parse("https://api.partnercenter.microsoft.com").expect("url");
            let route = "https://samgate.example/api/v1/partners/p/partner-center";
            let target = partner_center_target(&base, route);
            let mut body = PAGE.as_bytes()[..cut].to_vec();
            if mutate && at < body.len() {
                body[at] = byte;
            }
            if let Some(out) = rewrite(&body, &target) {
                proptest::prop_assert!(
                    serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok(),
                    "rewrote a body serde_json rejects"
                );
                let before: serde_json::Value =
                    serde_json::from_slice(&body).expect("one byte cannot make a lone surrogate");
                let mut after: serde_json::Value =
                    serde_json::from_slice(&out).expect("the rewrite is JSON");
                if let Some(links) = after.get_mut("links").and_then(|l| l.as_object_mut()) {
                    for (name, link) in links {
                        if let Some(uri) = link.get_mut("uri") {
                            *uri = before["links"][name]["uri"].clone();
                        }
                    }
                }
                proptest::prop_assert_eq!(before, after);
            }
        }
    }
}
