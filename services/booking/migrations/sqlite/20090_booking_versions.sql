-- A location's bookings version: bumped in the same transaction as every
-- change to what a day's list of its bookings shows beyond the calendar
-- (the bookings themselves, their findings, their reserved devices; the
-- resources they hold and the devices' states move the calendar version).
-- A list of a day reads both versions first and reuses the page it built
-- before when neither has moved (bookings.rs), so a kept page is never
-- older than the last commit before the call began, whichever replica or
-- path wrote it. Triggers, so that no write path can forget.
CREATE TABLE booking_versions (
    location_id TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL
);

CREATE TRIGGER bookings_insert_list AFTER INSERT ON bookings BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        VALUES (NEW.location_id, NEW.tenant_id, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER bookings_update_list AFTER UPDATE ON bookings BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        VALUES (NEW.location_id, NEW.tenant_id, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
    INSERT INTO booking_versions (location_id, tenant_id, version)
        SELECT OLD.location_id, OLD.tenant_id, 1 WHERE OLD.location_id <> NEW.location_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER bookings_delete_list AFTER DELETE ON bookings BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        VALUES (OLD.location_id, OLD.tenant_id, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;

-- Findings and reserved devices: the location of their booking (a hold's
-- are in no list; the booking made from it is inserted, which bumps).
CREATE TRIGGER booking_findings_insert_list AFTER INSERT ON booking_findings BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM bookings WHERE id = NEW.owner_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER booking_findings_update_list AFTER UPDATE ON booking_findings BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM bookings
        WHERE id IN (OLD.owner_id, NEW.owner_id)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER booking_findings_delete_list AFTER DELETE ON booking_findings BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM bookings WHERE id = OLD.owner_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER booking_devices_insert_list AFTER INSERT ON booking_devices BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM bookings WHERE id = NEW.booking_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER booking_devices_update_list AFTER UPDATE ON booking_devices BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM bookings
        WHERE id IN (OLD.booking_id, NEW.booking_id)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER booking_devices_delete_list AFTER DELETE ON booking_devices BEGIN
    INSERT INTO booking_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM bookings WHERE id = OLD.booking_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
