-- A second factor for staff who sign in with a password: an RFC 6238 (TOTP) secret per member,
-- sealed by the vault, and single-use recovery codes kept as hashes.

CREATE TABLE staff_mfa (
    staff_id       uuid PRIMARY KEY REFERENCES staff (id) ON DELETE CASCADE,
    -- The TOTP secret sealed by the vault (purpose `staff.totp_secret`, row = staff id); never
    -- stored in plaintext. `kek_id` lets key rotation find it.
    sealed_secret  bytea NOT NULL,
    kek_id         integer NOT NULL,
    -- NULL while the member has been shown the secret but has not confirmed it with a code.
    confirmed_at   timestamptz,
    -- The last accepted RFC 6238 time step: a code of this step or an earlier one is refused, so
    -- a code works once.
    last_step      bigint,
    created_at     timestamptz NOT NULL
);
CREATE INDEX staff_mfa_kek_idx ON staff_mfa (kek_id);

-- Recovery codes carry 80 random bits, so a SHA-256 (bound to the member) is enough to keep them
-- unguessable at rest, as for API keys; each is usable once.
CREATE TABLE staff_recovery_codes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id    uuid NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL,
    CONSTRAINT staff_recovery_codes_hash_key UNIQUE (staff_id, code_hash)
);

-- Sessions from before this migration were opened without the rules it brings (a second factor
-- for admins, MFA for sign-in with Microsoft): end them all.
UPDATE staff SET session_epoch = session_epoch + 1;
