-- SHA-256 of the SubjectPublicKeyInfo of the key that signed a PKCSReq when it was not the
-- CSR's key (a client signing with a throwaway self-signed identity): a CertPoll signed by the
-- same key finds the request. NULL on older rows: those are found by the CSR's key only.
ALTER TABLE pending_requests ADD COLUMN signer_key_sha256 BLOB;
