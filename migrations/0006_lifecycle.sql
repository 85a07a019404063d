-- Grant lifecycle: keep-alive leases, consecutive-failure counting, invitation expiry events,
-- webhook endpoints, their sealed secrets, and the webhook outbox.

-- Keep-alive claims a grant by setting a lease in a short transaction (SKIP LOCKED), commits, and
-- only then refreshes: the broker's refresh takes the grant's row lock itself, so holding the
-- claim's lock across the refresh would make the job wait on (or deadlock with) its own refresh.
ALTER TABLE grants ADD COLUMN keepalive_lease_until timestamptz;
-- Transient refresh failures since the last success (a success clears last_error_at; see
-- lifecycle::health). Three in a row move a healthy partner to `degraded`.
ALTER TABLE grants ADD COLUMN refresh_failures integer NOT NULL DEFAULT 0;

-- Set when housekeeping has announced the expiry (invitation.expired is emitted once).
ALTER TABLE invitations ADD COLUMN expired_at timestamptz;
CREATE INDEX invitations_expiring_idx ON invitations (expires_at)
    WHERE used_at IS NULL AND revoked_at IS NULL AND expired_at IS NULL;

-- Receivers registered by admins. `event_types` empty = every event.
CREATE TABLE webhook_endpoints (
    id          uuid PRIMARY KEY,
    url         text NOT NULL CHECK (url ~ '^https?://'),
    event_types text[] NOT NULL DEFAULT '{}',
    description text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    disabled_at timestamptz
);

-- Signing secrets (`whsec_` + base64 of 32 random bytes), sealed by the vault (purpose
-- `webhook.secret`, row = the secret's id). The current secret has no expiry; a rotated-out secret
-- keeps signing until `expires_at` (the overlap), so receivers can switch without losing messages.
CREATE TABLE webhook_secrets (
    id            uuid PRIMARY KEY,
    endpoint_id   uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    sealed_secret bytea NOT NULL,
    kek_id        integer NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz
);
CREATE INDEX webhook_secrets_endpoint_idx ON webhook_secrets (endpoint_id, created_at DESC);

-- The outbox: one row per (event, endpoint), inserted in the same transaction as the state change
-- it announces. `message_id` is the Standard Webhooks `webhook-id`, the same for every attempt and
-- replay so receivers can deduplicate. Kept when a partner is offboarded (history).
CREATE TABLE webhook_deliveries (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id        text NOT NULL,
    endpoint_id       uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type        text NOT NULL,
    partner_tenant_id uuid,
    payload           jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    lease_until       timestamptz,
    last_attempt_at   timestamptz,
    last_status       integer,
    last_error        text,
    last_response     text,
    delivered_at      timestamptz,
    CONSTRAINT webhook_deliveries_message_endpoint_key UNIQUE (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_delivered_idx ON webhook_deliveries (delivered_at) WHERE status = 'delivered';
