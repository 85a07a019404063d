-- Admin UI: the CPV app's consent in partners' customer tenants (made through Partner Center's
-- applicationconsents API), and the "grant to all customers" runs with per-customer progress.

-- The last known state of the CPV app's consent per customer, as samgate last set or saw it.
-- Partners are never deleted (offboarding marks them); the rows go with a deleted partner.
CREATE TABLE app_consents (
    partner_id         uuid NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    customer_tenant_id uuid NOT NULL,
    state              text NOT NULL CHECK (state IN ('granted', 'removed', 'failed')),
    error_code         text,
    advice             text,
    updated_by         text NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (partner_id, customer_tenant_id)
);

-- A bulk grant. At most one runs per partner (the partial unique index makes starting one
-- idempotent); `heartbeat_at` is bumped by the task, so a run whose instance died is taken over
-- as abandoned when a new one is asked for.
CREATE TABLE app_consent_runs (
    id           uuid PRIMARY KEY,
    partner_id   uuid NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'finished', 'failed', 'abandoned')),
    error        text,
    advice       text,
    started_by   text NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    finished_at  timestamptz
);
CREATE UNIQUE INDEX app_consent_runs_one_running_idx ON app_consent_runs (partner_id)
    WHERE state = 'running';
CREATE INDEX app_consent_runs_partner_idx ON app_consent_runs (partner_id, started_at DESC);

-- One row per customer of a run. `granted` and `already_granted` are both success.
CREATE TABLE app_consent_run_items (
    run_id             uuid NOT NULL REFERENCES app_consent_runs (id) ON DELETE CASCADE,
    customer_tenant_id uuid NOT NULL,
    customer_name      text NOT NULL DEFAULT '',
    position           integer NOT NULL,
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'granted', 'already_granted', 'failed')),
    error_code         text,
    advice             text,
    updated_at         timestamptz,
    PRIMARY KEY (run_id, customer_tenant_id)
);
