-- When the policy module heard how a request ended (issued, denied, failed). NULL on an ended
-- row means Notify is still owed: the retry task and the device's next retransmission deliver
-- it, so an issuance can never be missing from the device's inventory because the policy
-- module was down at the moment the row moved.
ALTER TABLE pending_requests ADD COLUMN notified_at INTEGER;
-- Rows that ended before this column existed were notified the old way (at most once).
UPDATE pending_requests SET notified_at = updated_at
    WHERE state IN ('issued', 'denied', 'failed');
CREATE INDEX pending_requests_unnotified ON pending_requests (updated_at)
    WHERE notified_at IS NULL AND state IN ('issued', 'denied', 'failed');
