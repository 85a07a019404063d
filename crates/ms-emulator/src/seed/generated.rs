//! Generated customers: a partner with thousands of customer tenants whose ids, names and domains
//! follow from the partner id and an index, so tests can name any of them without a lookup.

use uuid::Uuid;

use super::{
    ConsentSeed, CustomerPolicy, MissingConsentError, RelationshipSeed, RelationshipStatus,
    TenantSeed, default_roles,
};

/// What one generated customer has: by default an active GDAP relationship with the default
/// roles, no Conditional Access policy and no app consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerOptions {
    /// Status of the partner's GDAP relationship; `None` = no relationship at all.
    pub gdap: Option<RelationshipStatus>,
    /// Role definition ids on that relationship (empty: the relationship grants nothing).
    pub roles: Vec<Uuid>,
    /// The customer's Conditional Access policy for partner users.
    pub conditional_access: Option<CustomerPolicy>,
    /// The refusal a refresh gets while the app is not consented there.
    pub missing_consent_error: MissingConsentError,
    /// An app already consented in the customer tenant.
    pub consented_app: Option<Uuid>,
}

impl Default for CustomerOptions {
    fn default() -> CustomerOptions {
        CustomerOptions {
            gdap: Some(RelationshipStatus::Active),
            roles: default_roles(),
            conditional_access: None,
            missing_consent_error: MissingConsentError::default(),
            consented_app: None,
        }
    }
}

impl CustomerOptions {
    /// An active GDAP relationship, nothing else.
    pub fn new() -> CustomerOptions {
        CustomerOptions::default()
    }

    /// No GDAP relationship (a Partner Center customer the partner's users cannot reach).
    pub fn without_gdap(mut self) -> CustomerOptions {
        self.gdap = None;
        self
    }

    /// A relationship with this status.
    pub fn with_gdap_status(mut self, status: RelationshipStatus) -> CustomerOptions {
        self.gdap = Some(status);
        self
    }

    /// An `expired` relationship (its `endDateTime` is the emulator's start).
    pub fn with_expired_gdap(self) -> CustomerOptions {
        self.with_gdap_status(RelationshipStatus::Expired)
    }

    /// An active relationship that grants no role.
    pub fn with_gdap_without_roles(mut self) -> CustomerOptions {
        self.roles = Vec::new();
        self
    }

    /// A Conditional Access policy that refuses partner users.
    pub fn with_policy(mut self, policy: CustomerPolicy) -> CustomerOptions {
        self.conditional_access = Some(policy);
        self
    }

    /// The refusal while the app is not consented.
    pub fn with_missing_consent_error(mut self, error: MissingConsentError) -> CustomerOptions {
        self.missing_consent_error = error;
        self
    }

    /// The app is already consented in the customer tenant.
    pub fn with_app_consent(mut self, client_id: Uuid) -> CustomerOptions {
        self.consented_app = Some(client_id);
        self
    }
}

/// One generated customer's seed parts.
pub(crate) struct GeneratedCustomer {
    pub tenant: TenantSeed,
    pub relationship: Option<RelationshipSeed>,
    pub consent: Option<ConsentSeed>,
}

/// Tenant id of the partner's generated customer number `index`.
pub fn customer_id(partner: Uuid, index: usize) -> Uuid {
    Uuid::new_v5(&partner, format!("ms-emulator/customer/{index}").as_bytes())
}

/// Customer `index` of `partner`: "Customer 0042 Ltd", `customer0042<partner prefix>.onmicrosoft.com`.
pub(crate) fn customer(
    partner: Uuid,
    index: usize,
    options: &CustomerOptions,
) -> GeneratedCustomer {
    let id = customer_id(partner, index);
    let prefix = &partner.simple().to_string()[..8];
    let name = format!("Customer {index:04} Ltd");
    let mut tenant = TenantSeed::new(
        id,
        &name,
        &format!("customer{index:04}{prefix}.onmicrosoft.com"),
    )
    .with_missing_consent_error(options.missing_consent_error);
    tenant.conditional_access = options.conditional_access;
    let relationship = options.gdap.map(|status| {
        let rid = format!(
            "{}-{}",
            Uuid::new_v5(&partner, format!("ms-emulator/gdap/{index}").as_bytes()),
            Uuid::new_v5(&id, b"ms-emulator/gdap")
        );
        RelationshipSeed::active(partner, id)
            .with_id(&rid)
            .with_display_name(&format!("GDAP {name}"))
            .with_status(status)
            .with_roles(options.roles.clone())
    });
    let consent = options.consented_app.map(|client_id| ConsentSeed {
        tenant: id,
        client_id,
    });
    GeneratedCustomer {
        tenant,
        relationship,
        consent,
    }
}
