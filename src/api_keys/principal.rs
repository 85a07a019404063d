//! Who is calling (a verified key's client) and what it may do: which partners, which methods.

use std::collections::BTreeSet;

use reqwest::Method; // http::Method (1.x), re-exported
use uuid::Uuid;

/// The partner tenants a client may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerScope {
    /// Every partner.
    All,
    /// Only these partner tenant ids (empty: none).
    Only(BTreeSet<Uuid>),
}

impl PartnerScope {
    /// The scope stored as `all_partners` plus a list of tenants.
    pub fn from_stored(all_partners: bool, partners: impl IntoIterator<Item = Uuid>) -> Self {
        if all_partners {
            Self::All
        } else {
            Self::Only(partners.into_iter().collect())
        }
    }

    /// Whether `tenant` is inside the scope.
    pub fn contains(&self, tenant: Uuid) -> bool {
        match self {
            Self::All => true,
            Self::Only(tenants) => tenants.contains(&tenant),
        }
    }
}

/// The client behind a verified API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The client.
    pub client_id: Uuid,
    /// Its name (for logs and call records).
    pub client_name: String,
    /// The key that was presented.
    pub key_id: Uuid,
    /// The partners it may act for.
    pub scope: PartnerScope,
    /// Whether it may only read.
    pub read_only: bool,
}

impl Principal {
    /// Whether the client may act for the partner with this tenant id.
    pub fn allows_partner(&self, tenant: Uuid) -> bool {
        self.scope.contains(tenant)
    }

    /// Whether the client may use `method`: a read-only client only GET, HEAD and OPTIONS.
    pub fn allows_method(&self, method: &Method) -> bool {
        !self.read_only || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Uuid = Uuid::from_u128(0xa);
    const B: Uuid = Uuid::from_u128(0xb);
    const C: Uuid = Uuid::from_u128(0xc);

    fn principal(scope: PartnerScope, read_only: bool) -> Principal {
        Principal {
            client_id: Uuid::from_u128(1),
            client_name: "billing".into(),
            key_id: Uuid::from_u128(2),
            scope,
            read_only,
        }
    }

    #[test]
    fn partner_scoping_table() {
        let only_a = PartnerScope::from_stored(false, [A]);
        let a_and_b = PartnerScope::from_stored(false, [B, A, A]);
        let none = PartnerScope::from_stored(false, []);
        // all_partners wins over any stored list.
        let all = PartnerScope::from_stored(true, [A]);
        assert_eq!(all, PartnerScope::All);
        let table = [
            (&all, A, true),
            (&all, C, true),
            (&only_a, A, true),
            (&only_a, B, false),
            (&only_a, Uuid::nil(), false),
            (&a_and_b, A, true),
            (&a_and_b, B, true),
            (&a_and_b, C, false),
            (&none, A, false),
            (&none, Uuid::nil(), false),
        ];
        for (scope, tenant, allowed) in table {
            assert_eq!(
                principal(scope.clone(), false).allows_partner(tenant),
                allowed,
                "{scope:?} {tenant}"
            );
            // Read-only never widens or narrows the partner scope.
            assert_eq!(
                principal(scope.clone(), true).allows_partner(tenant),
                allowed
            );
        }
    }

    #[test]
    fn method_scoping_table() {
        let extension = Method::from_bytes(b"PROPFIND").expect("method");
        let table = [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::OPTIONS, true),
            (Method::POST, false),
            (Method::PUT, false),
            (Method::PATCH, false),
            (Method::DELETE, false),
            (Method::TRACE, false),
            (Method::CONNECT, false),
            (extension, false),
        ];
        for (method, read_only_allowed) in table {
            assert_eq!(
                principal(PartnerScope::All, true).allows_method(&method),
                read_only_allowed,
                "read-only {method}"
            );
            assert!(
                principal(PartnerScope::All, false).allows_method(&method),
                "read-write {method}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The scoping rules agree with a plain model: an all-partners client may act for any
        /// tenant, a listed one only for its list; a read-only client may only GET, HEAD, OPTIONS.
        #[test]
        fn scoping_decisions_agree_with_a_simple_model(
            all_partners in proptest::prelude::any::<bool>(),
            listed in proptest::collection::vec(0u128..6, 0..5),
            asked in 0u128..8,
            read_only in proptest::prelude::any::<bool>(),
            method in proptest::prop_oneof![
                proptest::strategy::Just("GET".to_owned()),
                proptest::strategy::Just("HEAD".to_owned()),
                proptest::strategy::Just("OPTIONS".to_owned()),
                proptest::strategy::Just("POST".to_owned()),
                proptest::strategy::Just("PUT".to_owned()),
                proptest::strategy::Just("PATCH".to_owned()),
                proptest::strategy::Just("DELETE".to_owned()),
                proptest::strategy::Just("get".to_owned()),
                "[A-Za-z]{1,10}",
            ],
        ) {
            let Ok(method) = Method::from_bytes(method.as_bytes()) else {
                return Ok(());
            };
            let tenants: Vec<Uuid> = listed.iter().map(|n| Uuid::from_u128(*n)).collect();
            let asked = Uuid::from_u128(asked);
            let principal = principal(PartnerScope::from_stored(all_partners, tenants.clone()), read_only);

            let model_partner = all_partners || tenants.contains(&asked);
            let model_method = !read_only || ["GET", "HEAD", "OPTIONS"].contains(&method.as_str());
            proptest::prop_assert_eq!(principal.allows_partner(asked), model_partner);
            proptest::prop_assert_eq!(principal.allows_method(&method), model_method);
        }
    }
}
