-- Token broker and proxy: access tokens shared by instances, and the record of proxied calls.

-- Access tokens minted from a partner's refresh token, sealed like the refresh token, so that
-- several samgate instances share one token per (partner, authority tenant, resource) instead of
-- each redeeming the refresh token. Removed with the partner's grant.
CREATE TABLE access_tokens (
    partner_id        uuid NOT NULL REFERENCES grants (partner_id) ON DELETE CASCADE,
    authority_tenant  uuid NOT NULL,
    resource          text NOT NULL,
    sealed_token      bytea NOT NULL,
    kek_id            integer NOT NULL,
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (partner_id, authority_tenant, resource)
);

-- One row per proxied call: who, for which partner, what, and how it went. Never bodies or tokens.
-- Kept when a partner is offboarded (history), so no foreign key to partners.
CREATE TABLE proxy_calls (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at       timestamptz NOT NULL,
    client_id         uuid,
    partner_tenant_id uuid NOT NULL,
    customer_tenant_id uuid,
    upstream          text NOT NULL,
    method            text NOT NULL,
    route             text NOT NULL,
    status            integer NOT NULL,
    latency_ms        integer NOT NULL,
    request_id        text,
    correlation_id    text,
    error_code        text
);
CREATE INDEX proxy_calls_partner_idx ON proxy_calls (partner_tenant_id, occurred_at DESC);
CREATE INDEX proxy_calls_time_idx ON proxy_calls (occurred_at DESC);
