-- API clients (backend services) and their keys.

CREATE TABLE api_clients (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    description  text,
    -- true: every partner; false: only the tenants listed in api_client_partners (possibly none).
    all_partners boolean NOT NULL,
    -- true: only GET, HEAD and OPTIONS are proxied.
    read_only    boolean NOT NULL DEFAULT false,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    disabled_at  timestamptz,
    CONSTRAINT api_clients_name_key UNIQUE (name),
    CONSTRAINT api_clients_name_not_blank CHECK (btrim(name) <> '')
);

-- Partner tenants a client may act for when it is not all_partners. Deliberately no foreign key
-- to partners: a client may be scoped to a partner before that partner consents, and a tenant id
-- grants nothing without a live grant.
CREATE TABLE api_client_partners (
    client_id         uuid NOT NULL REFERENCES api_clients (id) ON DELETE CASCADE,
    partner_tenant_id uuid NOT NULL,
    PRIMARY KEY (client_id, partner_tenant_id)
);

-- Keys are `sgk_` + base64url(32 random bytes) and stored only as SHA-256 of the whole key. A fast
-- hash is right here: a 256-bit random secret has no dictionary to attack, so a slow hash (argon2)
-- would only cost CPU on every cache miss; and the lookup is by exact hash, so its timing says
-- nothing about how much of a guessed key matched.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES api_clients (id) ON DELETE CASCADE,
    -- The first characters of the key (`sgk_AbCd`), shown in listings so people can tell keys apart.
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    revoked_by   text,
    -- Written in batches by the verifier (at most every ~30 s), never once per request.
    last_used_at timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_key_hash_is_sha256 CHECK (octet_length(key_hash) = 32)
);
CREATE INDEX api_keys_client_idx ON api_keys (client_id, created_at DESC);

-- Every samgate instance caches verified keys for a few seconds and LISTENs on samgate_api_keys;
-- any change that can turn a yes into a no (or a no into a yes) notifies it, on commit. Triggers,
-- not application code, so a change made with psql reaches the caches too. The payload is the id
-- of the changed key or client (instances drop the answers it can affect).
CREATE FUNCTION api_keys_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'samgate_api_keys',
        (CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END) ->> TG_ARGV[0]
    );
    RETURN NULL;
END;
$$;

-- Inserts too, so a cached "unknown key" answer for a freshly issued key is dropped at once.
-- last_used_at updates do not notify (they would empty every cache every flush).
CREATE TRIGGER api_keys_inserted_or_deleted
    AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change('id');
CREATE TRIGGER api_keys_changed
    AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
          OR OLD.client_id IS DISTINCT FROM NEW.client_id)
    EXECUTE FUNCTION api_keys_notify_change('id');
CREATE TRIGGER api_clients_changed
    AFTER UPDATE OR DELETE ON api_clients
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change('id');
CREATE TRIGGER api_client_partners_changed
    AFTER INSERT OR UPDATE OR DELETE ON api_client_partners
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change('client_id');
