-- Row-level security for fleet's outbox (30020): the same one policy as
-- every table (30050).

ALTER TABLE fleet_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON fleet_outbox
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));
