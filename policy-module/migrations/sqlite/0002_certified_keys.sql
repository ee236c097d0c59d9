-- Reliability P10 (a key already certified to another device, e.g. a cloned disk image): each
-- certificate records the SHA-256 of its key's SubjectPublicKeyInfo DER, indexed, so
-- VerifyRequest can find who holds a key. Certificates recorded before this migration take it
-- from the request that was granted for them (Notify checked that the keys match).
ALTER TABLE certificates ADD COLUMN spki_hash BLOB;
UPDATE certificates SET spki_hash = (
    SELECT r.spki_hash FROM requests r WHERE r.transaction_id = certificates.transaction_id
);
CREATE INDEX certificates_spki ON certificates (spki_hash);
