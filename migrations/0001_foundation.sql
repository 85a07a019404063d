-- Foundation: partners and the append-only audit log.

CREATE TABLE partners (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL,
    display_name      text NOT NULL,
    domain            text,
    mpn_id            text,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'healthy', 'needs_consent', 'mfa_required', 'degraded', 'offboarded')),
    status_reason     text,
    status_code       text,
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    offboarded_at     timestamptz,
    CONSTRAINT partners_tenant_id_key UNIQUE (tenant_id)
);

-- Who did what to which partner. Rows are never changed or removed: the database refuses it.
CREATE TABLE audit_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at       timestamptz NOT NULL DEFAULT now(),
    actor             text NOT NULL,
    action            text NOT NULL,
    partner_tenant_id uuid,
    details           jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_partner_idx ON audit_events (partner_tenant_id, occurred_at DESC);
CREATE INDEX audit_events_time_idx ON audit_events (occurred_at DESC);

CREATE FUNCTION audit_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_are_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_are_append_only();
