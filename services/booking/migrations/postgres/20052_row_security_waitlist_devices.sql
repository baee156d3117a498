-- Row-level security for the tables the waitlist (20010) and the device
-- links (20020) added: the same one policy as every table (20050).

ALTER TABLE waitlist_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE waitlist_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON waitlist_entries
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE waitlist_offers ENABLE ROW LEVEL SECURITY;
ALTER TABLE waitlist_offers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON waitlist_offers
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE booking_location_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_location_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_location_settings
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE booking_reassignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_reassignments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_reassignments
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));
