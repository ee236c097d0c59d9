-- Issued certificates, their revocation state, the audit trail and the CRL counter.
CREATE TABLE certificates (
    serial            TEXT    PRIMARY KEY,   -- lowercase hex, no leading zero bytes
    request_id        TEXT    NOT NULL UNIQUE,
    csr_sha256        TEXT    NOT NULL,
    template          TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    sans              TEXT    NOT NULL,      -- JSON array as granted
    public_key_sha256 TEXT    NOT NULL,
    der               BYTEA   NOT NULL,
    not_before        BIGINT  NOT NULL,
    not_after         BIGINT  NOT NULL,
    issued_at         BIGINT  NOT NULL,
    issued_to         TEXT    NOT NULL,      -- caller identity that asked
    status            TEXT    NOT NULL DEFAULT 'good' CHECK (status IN ('good', 'revoked', 'hold')),
    revoked_at        BIGINT,
    reason            TEXT
);
CREATE INDEX certificates_status ON certificates (status);

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT  NOT NULL,
    action     TEXT    NOT NULL,
    serial     TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    detail     TEXT    NOT NULL
);

CREATE TABLE crl_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    number BIGINT  NOT NULL
);
INSERT INTO crl_state (id, number) VALUES (1, 0);
