-- Issue 16 item 2: unblock releases a certificateHold through the same outbox as revocations
-- (docs/decisions.md #11). `revoke` (reason = the RFC 5280 reason) or `release`.
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'revoke';
-- The outbox delivers one serial's entries in order (a release never overtakes its hold).
CREATE INDEX outbox_serial ON outbox (serial, id);
