-- A location's calendar version: bumped in the same transaction as every
-- change to what a search reads of the location (its resources, their
-- blackouts, the allocations of bookings and holds). A search reads it
-- first and reuses the calendar it read before when it has not moved
-- (availability.rs, calendars.rs), so a cached calendar is never older
-- than the last commit before the search began, whichever replica or
-- path wrote it. Triggers, so that no write path can forget.
CREATE TABLE calendar_versions (
    location_id TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL
);

CREATE TRIGGER allocations_insert_calendar AFTER INSERT ON allocations BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM resources WHERE id = NEW.resource_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER allocations_update_calendar AFTER UPDATE ON allocations BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM resources
        WHERE id IN (OLD.resource_id, NEW.resource_id)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER allocations_delete_calendar AFTER DELETE ON allocations BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM resources WHERE id = OLD.resource_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER blackouts_insert_calendar AFTER INSERT ON blackouts BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM resources WHERE id = NEW.resource_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER blackouts_update_calendar AFTER UPDATE ON blackouts BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM resources
        WHERE id IN (OLD.resource_id, NEW.resource_id)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER blackouts_delete_calendar AFTER DELETE ON blackouts BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        SELECT location_id, tenant_id, 1 FROM resources WHERE id = OLD.resource_id
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER resources_insert_calendar AFTER INSERT ON resources BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        VALUES (NEW.location_id, NEW.tenant_id, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER resources_update_calendar AFTER UPDATE ON resources BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        VALUES (OLD.location_id, OLD.tenant_id, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        VALUES (NEW.location_id, NEW.tenant_id, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER resources_delete_calendar AFTER DELETE ON resources BEGIN
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        VALUES (OLD.location_id, OLD.tenant_id, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = version + 1;
END;
