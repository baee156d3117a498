-- A transaction that takes a location's lock (store::allocations::
-- lock_location) bumps the location's calendar version there, once, and
-- marks the location bumped in a setting local to the transaction. The
-- triggers of its later changes to that location's calendar (allocations,
-- blackouts, resources) skip the bump: the version it leaves is known at
-- the lock, and no statement after the change is needed to read it. A
-- transaction without the lock bumps on every change, as before; the
-- version still moves, in the same transaction, with every change.
CREATE OR REPLACE FUNCTION bump_calendar(location TEXT, tenant TEXT) RETURNS void AS $$
BEGIN
    IF strpos(COALESCE(current_setting('recovery.calendar_bumped', true), ''),
              '<' || location || '>') > 0 THEN
        RETURN;
    END IF;
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        VALUES (location, tenant, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = calendar_versions.version + 1;
END
$$ LANGUAGE plpgsql;
