-- Issue 18: the console searches certificates by subject. Notify records the subject as the CA
-- issued it (an RFC 4514 string read from the certificate). Rows recorded before this migration
-- are filled in from their own DER when the store opens (`Store::backfill_subjects`).
-- A case-insensitive substring cannot use a B-tree index: one search page reads at most the
-- 10,000 newest certificates (after its cursor) and says where to go on (docs/decisions.md #16).
ALTER TABLE certificates ADD COLUMN subject TEXT;
-- The rows still to fill in, so the backfill at open reads only them.
CREATE INDEX certificates_no_subject ON certificates (serial) WHERE subject IS NULL;
