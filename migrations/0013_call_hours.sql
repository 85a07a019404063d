-- Hourly rollup of proxy_calls for the day and 30-day activity views: counts and a latency
-- histogram per hour and partner (client_id nil: over all clients) and per hour and API client
-- (partner_tenant_id nil: over all partners; client_id nil again for calls without a client),
-- written by the housekeeping job for complete hours up to proxy_call_rollup.rolled_until; later
-- calls are read from proxy_calls. Pruned with proxy_calls.
CREATE TABLE proxy_call_hours (
    hour              timestamptz NOT NULL,
    partner_tenant_id uuid NOT NULL,
    client_id         uuid NOT NULL,
    calls             bigint NOT NULL,
    client_errors     bigint NOT NULL,
    throttled         bigint NOT NULL,
    server_errors     bigint NOT NULL,
    samgate_errors    bigint NOT NULL,
    -- Calls per latency bucket (upper bounds in src/db/activity.rs, LATENCY_BOUNDS_MS; one more
    -- for slower calls).
    latency_counts    bigint[] NOT NULL,
    PRIMARY KEY (hour, partner_tenant_id, client_id)
);
CREATE INDEX proxy_call_hours_partner_idx ON proxy_call_hours (partner_tenant_id, hour);
CREATE INDEX proxy_call_hours_client_idx ON proxy_call_hours (client_id, hour);

-- One row: the end of the hours proxy_call_hours holds.
CREATE TABLE proxy_call_rollup (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    rolled_until timestamptz NOT NULL
);
