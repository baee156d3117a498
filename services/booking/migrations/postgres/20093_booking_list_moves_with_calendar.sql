-- A day's list of bookings is kept under two versions of its location, the
-- calendar's and the bookings' (bookings.rs): either moving makes the next
-- list read it again. A transaction that bumped the location's calendar
-- version under its lock (marked in `recovery.calendar_bumped`, 20092)
-- commits a new calendar version with its changes, so bumping the bookings
-- version as well tells a list nothing more: the bump is skipped. A new
-- booking bumped it four times at commit (the booking and each of its
-- findings), inside the location's turn. Every other change bumps it as
-- before.

-- Whether this transaction bumped `location`'s calendar version under its
-- lock: the one reading of the marker, for both bumps.
CREATE FUNCTION calendar_bumped_here(location TEXT) RETURNS boolean AS $$
    SELECT strpos(COALESCE(current_setting('recovery.calendar_bumped', true), ''),
                  '<' || location || '>') > 0;
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION bump_calendar(location TEXT, tenant TEXT) RETURNS void AS $$
BEGIN
    IF calendar_bumped_here(location) THEN
        RETURN;
    END IF;
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        VALUES (location, tenant, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = calendar_versions.version + 1;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bump_booking_list(location TEXT, tenant TEXT) RETURNS void AS $$
BEGIN
    IF calendar_bumped_here(location) THEN
        RETURN;
    END IF;
    INSERT INTO booking_versions (location_id, tenant_id, version)
        VALUES (location, tenant, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = booking_versions.version + 1;
END
$$ LANGUAGE plpgsql;
