-- Issue 16 item 1: one transaction's story. Audit rows are written in the transaction of the
-- state change they record (docs/decisions.md #12), keyed by the client's transactionID with
-- ndes-proxy's request id beside it (they differ for renewals), and linked to the challenge
-- (by reference, never the secret) and to the certificate (by serial).
ALTER TABLE audit ADD COLUMN request_id TEXT;
ALTER TABLE audit ADD COLUMN profile_version BIGINT;
ALTER TABLE audit ADD COLUMN serial TEXT;
ALTER TABLE audit ADD COLUMN challenge TEXT;
ALTER TABLE audit ADD COLUMN actor TEXT;
ALTER TABLE audit ADD COLUMN reason TEXT;
-- A JSON object of what else the event carries (message type, algorithms, pkiStatus, ...).
ALTER TABLE audit ADD COLUMN facts TEXT;
ALTER TABLE audit ADD COLUMN source TEXT;
CREATE INDEX audit_transaction ON audit (transaction_id);
CREATE INDEX audit_request ON audit (request_id);
CREATE INDEX audit_serial ON audit (serial);
CREATE INDEX audit_challenge ON audit (challenge);
CREATE INDEX audit_device ON audit (device_id, id);
-- The client's transactionID of a request whose id is not it (a renewal's request id).
ALTER TABLE requests ADD COLUMN client_transaction_id TEXT;
