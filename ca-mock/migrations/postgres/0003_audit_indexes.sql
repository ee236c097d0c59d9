-- The CA's records are read through `GET /api/v1/records` by serial, by request id (the SCEP
-- transactionID) and by time range; each lookup goes through an index, never a scan of the
-- whole trail.
CREATE INDEX audit_log_serial ON audit_log (serial);
CREATE INDEX audit_log_request_id ON audit_log (request_id);
CREATE INDEX audit_log_at ON audit_log (at);
