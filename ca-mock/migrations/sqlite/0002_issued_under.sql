-- Under which right each certificate was issued (docs/decisions.md #10): `grant <key id>` (a
-- grant the policy module signed), `plain mode` (plain mode's entitlement) or `operator` (the
-- CA's own console). Records from before this column say `unrecorded`.
ALTER TABLE certificates ADD COLUMN issued_under TEXT NOT NULL DEFAULT 'unrecorded';
