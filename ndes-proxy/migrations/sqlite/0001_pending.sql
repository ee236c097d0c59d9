-- Requests answered PENDING: awaiting manual approval, or granted and queued while the CA was
-- unreachable. Keyed by the request id (transactionID, or transactionID + renewing certificate).
CREATE TABLE pending_requests (
    request_id      TEXT    PRIMARY KEY,
    transaction_id  TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    csr_der         BLOB    NOT NULL,
    grant_json      TEXT    NOT NULL,   -- policy_module::Grant as JSON
    state           TEXT    NOT NULL CHECK (state IN
                        ('awaiting_approval', 'queued_for_ca', 'issued', 'denied', 'failed')),
    serial          TEXT,               -- issued: lowercase hex
    cert_der        BLOB,               -- issued: the certificate
    reason          TEXT,               -- failed / denied: why (logs and admin API only)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,   -- unix seconds; queued_for_ca rows are retried after it
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX pending_requests_due ON pending_requests (state, next_attempt_at);
CREATE INDEX pending_requests_created ON pending_requests (created_at);
