-- Issue 15 item 2 (ESC1 on the mscep_admin path): each template the admin path may serve has an
-- administrator's name policy (JSON of policy_module::name_policy::NamePolicy); a template
-- without one gets no admin challenge. Audit records say whether the names they concern were
-- supplied by the enrollee unchecked (the policy's enrollee_supplies_subject flag).
CREATE TABLE name_policies (
    template TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
ALTER TABLE audit ADD COLUMN esc1_exposed BOOLEAN NOT NULL DEFAULT FALSE;
