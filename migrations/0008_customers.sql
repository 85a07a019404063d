-- The customer directory: each partner's customer tenants as Partner Center lists them, their
-- GDAP relationships as Graph shows them, and samgate's per-(partner, customer) access state
-- (relationship, app consent, last token outcome at the customer's authority). The state changes
-- only through `health::customer`, which audits and announces every change.

-- What samgate knows of the partner's delegated access to the customer.
--   unknown      never read (e.g. the row was created by an app consent before any sync)
--   listed       Partner Center lists the customer; GDAP could not be read (no Graph access)
--   gdap_active  at least one active GDAP relationship with at least one role
--   gdap_expired relationships exist, none active (expired, terminated, pending…)
--   none         GDAP was read and there is no relationship with this customer
CREATE TYPE customer_relationship AS ENUM ('unknown', 'listed', 'gdap_active', 'gdap_expired', 'none');
-- The CPV app's consent in the customer tenant, as samgate made or saw it. `stale`: granted with
-- other scopes than SAMGATE_APP_CONSENT_GRANTS now asks for.
CREATE TYPE customer_consent AS ENUM ('none', 'granted', 'stale');
-- The last answer of Microsoft's token endpoint at the customer's authority.
CREATE TYPE customer_token_outcome AS ENUM ('unknown', 'ok', 'refused');

CREATE TABLE customers (
    partner_id        uuid NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    tenant_id         uuid NOT NULL,
    company_name      text NOT NULL DEFAULT '',
    domain            text NOT NULL DEFAULT '',
    -- Partner Center listed it at the last complete sync.
    listed            boolean NOT NULL DEFAULT false,
    relationship      customer_relationship NOT NULL DEFAULT 'unknown',
    -- Union of the unified role definition ids of the active relationships.
    gdap_roles        uuid[] NOT NULL DEFAULT '{}',
    -- The latest end of an active relationship (or of the last expired one).
    gdap_ends_at      timestamptz,
    consent           customer_consent NOT NULL DEFAULT 'none',
    -- Canonical text of the grants consented ("resource:scope,scope;…"), to detect stale scopes.
    consent_grants    text,
    consent_changed_at timestamptz,
    token_outcome     customer_token_outcome NOT NULL DEFAULT 'unknown',
    -- For `refused`: samgate's customer error code (customer_policy_blocked…), the AADSTS code,
    -- the classification and advice for a person.
    token_error       text,
    token_code        text,
    token_advice      text,
    token_checked_at  timestamptz,
    first_seen_at     timestamptz NOT NULL,
    -- The last sync that saw the customer (in Partner Center's list or in GDAP).
    seen_at           timestamptz NOT NULL,
    -- Set when a complete sync no longer saw it: no longer a customer of this partner.
    removed_at        timestamptz,
    PRIMARY KEY (partner_id, tenant_id)
);
-- Keyset listing by name within a partner.
CREATE INDEX customers_partner_name_idx ON customers (partner_id, company_name, tenant_id);

-- The directory's bookkeeping per partner: when it was last read completely, and a lease so one
-- instance syncs a partner at a time (scheduled job and on-demand syncs alike).
ALTER TABLE partners ADD COLUMN customers_synced_at timestamptz;
ALTER TABLE partners ADD COLUMN customers_sync_error text;
ALTER TABLE partners ADD COLUMN customers_sync_lease_until timestamptz;
ALTER TABLE partners ADD COLUMN customers_gdap_readable boolean;

-- A grant-to-all item can be granted while the partner has no GDAP access there.
ALTER TABLE app_consent_run_items DROP CONSTRAINT app_consent_run_items_state_check;
ALTER TABLE app_consent_run_items ADD CONSTRAINT app_consent_run_items_state_check
    CHECK (state IN ('pending', 'granted', 'already_granted', 'granted_no_gdap', 'failed'));
