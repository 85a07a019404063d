//! The token's tenant as an organization: `organization`, `domains` (its initial
//! `*.onmicrosoft.com` domain) and `subscribedSkus` (one SKU per offer of its seeded
//! subscriptions). Graph does not page these; `$select` applies.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::odata::{self, ResourceType};
use super::{GraphRequest, respond};
use crate::state::{Shared, Tenant};

const ORGANIZATION_PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "assignedPlans",
    "businessPhones",
    "city",
    "country",
    "countryLetterCode",
    "createdDateTime",
    "defaultUsageLocation",
    "displayName",
    "marketingNotificationEmails",
    "onPremisesLastSyncDateTime",
    "onPremisesSyncEnabled",
    "partnerTenantType",
    "postalCode",
    "preferredLanguage",
    "privacyProfile",
    "provisionedPlans",
    "securityComplianceNotificationMails",
    "securityComplianceNotificationPhones",
    "state",
    "street",
    "technicalNotificationMails",
    "tenantType",
    "verifiedDomains",
];

const ORGANIZATION: ResourceType = ResourceType {
    name: "organization",
    filter_name: "Organization",
    properties: ORGANIZATION_PROPERTIES,
    defaults: ORGANIZATION_PROPERTIES,
    filters: &[],
};

const DOMAIN_PROPERTIES: &[&str] = &[
    "id",
    "authenticationType",
    "availabilityStatus",
    "isAdminManaged",
    "isDefault",
    "isInitial",
    "isRoot",
    "isVerified",
    "passwordNotificationWindowInDays",
    "passwordValidityPeriodInDays",
    "state",
    "supportedServices",
];

const DOMAIN: ResourceType = ResourceType {
    name: "domain",
    filter_name: "Domain",
    properties: DOMAIN_PROPERTIES,
    defaults: DOMAIN_PROPERTIES,
    filters: &[],
};

const SKU_PROPERTIES: &[&str] = &[
    "accountId",
    "accountName",
    "appliesTo",
    "capabilityStatus",
    "consumedUnits",
    "id",
    "prepaidUnits",
    "servicePlans",
    "skuId",
    "skuPartNumber",
    "subscriptionIds",
];

const SUBSCRIBED_SKU: ResourceType = ResourceType {
    name: "subscribedSku",
    filter_name: "SubscribedSku",
    properties: SKU_PROPERTIES,
    defaults: SKU_PROPERTIES,
    filters: &[],
};

fn organization_json(t: &Tenant) -> Value {
    json!({
        "id": t.id,
        "deletedDateTime": Value::Null,
        "assignedPlans": [],
        "businessPhones": [],
        "city": Value::Null,
        "country": Value::Null,
        "countryLetterCode": "US",
        "createdDateTime": t.created.format(&Rfc3339).unwrap_or_default(),
        "defaultUsageLocation": Value::Null,
        "displayName": t.display_name,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": Value::Null,
        "onPremisesSyncEnabled": Value::Null,
        "partnerTenantType": if t.is_partner { Value::from("resellerPartnerDelegatedAdmin") } else { Value::Null },
        "postalCode": Value::Null,
        "preferredLanguage": "en",
        "privacyProfile": Value::Null,
        "provisionedPlans": [],
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": Value::Null,
        "street": Value::Null,
        "technicalNotificationMails": [],
        "tenantType": "AAD",
        "verifiedDomains": [{
            "capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": true, "isInitial": true, "name": t.default_domain, "type": "Managed",
        }],
    })
}

/// The initial domain. UNCONFIRMED: the password policy numbers are the values new tenants
/// commonly show (14 days notice, passwords that never expire).
fn domain_json(t: &Tenant) -> Value {
    json!({
        "id": t.default_domain,
        "authenticationType": "Managed",
        "availabilityStatus": Value::Null,
        "isAdminManaged": true,
        "isDefault": true,
        "isInitial": true,
        "isRoot": true,
        "isVerified": true,
        "passwordNotificationWindowInDays": 14,
        "passwordValidityPeriodInDays": 2_147_483_647_i64,
        "state": Value::Null,
        "supportedServices": ["Email", "OfficeCommunicationsOnline"],
    })
}

/// Graph's `skuId`/`skuPartNumber` of an offer: Microsoft's published pair where the emulator
/// knows it, else a stable UUID v5 of the offer name and the name in capitals.
fn sku_of(offer_name: &str) -> (Uuid, String) {
    if offer_name.eq_ignore_ascii_case("Microsoft 365 Business Premium") {
        return (
            Uuid::from_u128(0xcbdc14ab_d96c_4c30_b9f4_6ada7cdc1d46),
            "SPB".to_owned(),
        );
    }
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, offer_name.as_bytes());
    let part = offer_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    (id, part)
}

/// One SKU per offer. UNCONFIRMED: `consumedUnits` counts the tenant's users (capped at the
/// seats), as if every user held a license; service plans are not modelled.
fn subscribed_skus_json(t: &Tenant, users: usize) -> Vec<Value> {
    let mut skus: Vec<(Uuid, String, u32, bool, Vec<Uuid>)> = Vec::new();
    for s in &t.subscriptions {
        let (sku_id, part) = sku_of(&s.offer_name);
        let enabled = s.status.eq_ignore_ascii_case("active");
        match skus.iter_mut().find(|k| k.0 == sku_id) {
            Some(k) => {
                k.2 += s.quantity;
                k.3 |= enabled;
                k.4.push(s.id);
            }
            None => skus.push((sku_id, part, s.quantity, enabled, vec![s.id])),
        }
    }
    skus.into_iter()
        .map(|(sku_id, part, seats, enabled, subscriptions)| {
            let consumed = users.min(usize::try_from(seats).unwrap_or(usize::MAX));
            json!({
                "accountId": t.id,
                "accountName": t.display_name,
                "appliesTo": "User",
                "capabilityStatus": if enabled { "Enabled" } else { "Suspended" },
                "consumedUnits": consumed,
                "id": format!("{}_{sku_id}", t.id),
                "prepaidUnits": {
                    "enabled": if enabled { seats } else { 0 },
                    "lockedOut": 0,
                    "suspended": if enabled { 0 } else { seats },
                    "warning": 0,
                },
                "servicePlans": [],
                "skuId": sku_id,
                "skuPartNumber": part,
                "subscriptionIds": subscriptions,
            })
        })
        .collect()
}

pub(super) async fn list_organization(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        odata::unpaged(
            &req,
            raw.as_deref(),
            "organization",
            &ORGANIZATION,
            &[organization_json(&t)],
        )
    })())
}

pub(super) async fn list_domains(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        odata::unpaged(&req, raw.as_deref(), "domains", &DOMAIN, &[domain_json(&t)])
    })())
}

pub(super) async fn list_subscribed_skus(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let users = shared.world().users_of(t.id).count();
        odata::unpaged(
            &req,
            raw.as_deref(),
            "subscribedSkus",
            &SUBSCRIBED_SKU,
            &subscribed_skus_json(&t, users),
        )
    })())
}
