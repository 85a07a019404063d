-- Consent onboarding: invitations and grants (sealed refresh tokens).

CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    -- SHA-256 of the token in the link; the token itself is never stored.
    token_hash       bytea NOT NULL,
    partner_name     text NOT NULL,
    -- A tenant GUID or verified domain the consenting admin must belong to, if known.
    expected_tenant  text,
    login_hint       text,
    -- Set for a re-consent: the partner whose grant this invitation renews.
    partner_id       uuid REFERENCES partners (id) ON DELETE CASCADE,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    used_by_oid      uuid,
    revoked_at       timestamptz,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_used_or_revoked CHECK (used_at IS NULL OR revoked_at IS NULL)
);
CREATE INDEX invitations_pending_idx ON invitations (expires_at) WHERE used_at IS NULL AND revoked_at IS NULL;

-- At most one live grant per partner; offboarding deletes it (and with it the sealed token).
CREATE TABLE grants (
    partner_id           uuid PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    sealed_refresh_token bytea NOT NULL,
    kek_id               integer NOT NULL,
    -- Incremented on every rotation: a writer that read version n only replaces version n.
    version              bigint NOT NULL DEFAULT 1,
    app_id               uuid NOT NULL,
    cloud                text NOT NULL,
    consented_by_oid     uuid NOT NULL,
    consented_by_name    text,
    consented_by_upn     text,
    consented_at         timestamptz NOT NULL,
    mfa_evidence         text NOT NULL,
    refreshed_at         timestamptz NOT NULL,
    last_used_at         timestamptz,
    last_error_code      text,
    last_error_at        timestamptz
);
CREATE INDEX grants_refreshed_idx ON grants (refreshed_at);
CREATE INDEX grants_kek_idx ON grants (kek_id);
