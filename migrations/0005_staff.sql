-- CPV staff accounts for the admin UI, sign-in throttling, and the indexes the admin pages page by.

CREATE TABLE staff (
    id             uuid PRIMARY KEY,
    -- Stored lower-cased (the application normalises; the check keeps it honest).
    email          text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    display_name   text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    -- Argon2id PHC string.
    password_hash  text NOT NULL,
    disabled_at    timestamptz,
    -- Bumped by "log out everywhere", disabling and role changes: sessions that carry an older
    -- epoch stop working.
    session_epoch  integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    last_login_at  timestamptz,
    CONSTRAINT staff_email_key UNIQUE (email)
);

-- Failed sign-ins, keyed by a SHA-256 of "account:<email>" or "address:<ip>" (never the email
-- itself). Counting rows inside a sliding window gives the throttle; every instance sees the same
-- counts. Rows older than the window are deleted as new failures arrive.
CREATE TABLE staff_login_failures (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject    bytea NOT NULL,
    failed_at  timestamptz NOT NULL
);
CREATE INDEX staff_login_failures_subject_idx ON staff_login_failures (subject, failed_at);

-- Partners list: keyset pagination by (display_name, id), overall and per status.
CREATE INDEX partners_name_idx ON partners (display_name, id);
CREATE INDEX partners_status_name_idx ON partners (status, display_name, id);
-- Dashboard "recent failures": the few partners that are neither healthy, pending nor offboarded.
CREATE INDEX partners_failing_idx ON partners (status_changed_at DESC)
    WHERE status IN ('needs_consent', 'mfa_required', 'degraded');
-- Partners search by substring of name or domain (pg_trgm is a trusted extension since PG 13).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX partners_name_trgm_idx ON partners USING gin (display_name gin_trgm_ops);
CREATE INDEX partners_domain_trgm_idx ON partners USING gin (domain gin_trgm_ops);

-- Audit log filters, each keyset-paged newest first by id.
CREATE INDEX audit_events_actor_idx ON audit_events (actor, id DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, id DESC);
