-- policy-module schema (PostgreSQL). Times are integer Unix seconds; digests are SHA-256 bytes.
CREATE TABLE profiles (
    id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE profile_versions (
    profile_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (profile_id, version)
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    credential_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE device_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES device_groups (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    PRIMARY KEY (group_id, device_id)
);
CREATE TABLE assignments (
    profile_id TEXT NOT NULL REFERENCES profiles (id),
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (profile_id, target_kind, target_id)
);
CREATE TABLE challenges (
    hash BYTEA PRIMARY KEY,
    kind TEXT NOT NULL,
    device_id TEXT,
    profile_id TEXT,
    profile_version BIGINT,
    template TEXT NOT NULL,
    expected TEXT,
    requester TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    reserved_tx TEXT,
    reserved_csr BYTEA,
    reserved_at BIGINT,
    consumed_at BIGINT
);
CREATE INDEX challenges_outstanding ON challenges (kind, consumed_at, expires_at);
CREATE TABLE requests (
    transaction_id TEXT PRIMARY KEY,
    csr_hash BYTEA NOT NULL,
    spki_hash BYTEA NOT NULL,
    challenge_hash BYTEA,
    renewal_of TEXT,
    grant_body TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    thumbprint TEXT NOT NULL UNIQUE,
    device_id TEXT,
    profile_id TEXT,
    profile_version BIGINT,
    transaction_id TEXT NOT NULL UNIQUE,
    not_after BIGINT NOT NULL,
    der BYTEA NOT NULL,
    status TEXT NOT NULL,
    revocation_reason TEXT,
    issued_at BIGINT NOT NULL,
    revoked_at BIGINT,
    installed_at BIGINT
);
CREATE INDEX certificates_device ON certificates (device_id, status);
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    serial TEXT NOT NULL,
    reason TEXT NOT NULL,
    device_id TEXT,
    cause TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    acked_at BIGINT
);
CREATE INDEX commands_device ON commands (device_id, state);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    device_id TEXT,
    profile_id TEXT,
    transaction_id TEXT,
    detail TEXT
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
