-- Issue 18: the console searches the certificate inventory by status, newest first, and pages
-- it (`GET /api/v1/certificates`); with 100,000 certificates these stay index reads. Serial
-- (the primary key) and device (`certificates_device`) already have theirs.
CREATE INDEX certificates_status ON certificates (status, issued_at, serial);
CREATE INDEX certificates_issued ON certificates (issued_at, serial);
