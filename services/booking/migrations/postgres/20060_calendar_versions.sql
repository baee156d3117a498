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

ALTER TABLE calendar_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON calendar_versions
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

CREATE FUNCTION bump_calendar(location TEXT, tenant TEXT) RETURNS void AS $$
    INSERT INTO calendar_versions (location_id, tenant_id, version)
        VALUES (location, tenant, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = calendar_versions.version + 1;
$$ LANGUAGE sql;

-- Allocations and blackouts: the location of their resource.
CREATE FUNCTION bump_calendar_of_resource() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM bump_calendar(r.location_id, r.tenant_id)
            FROM resources r WHERE r.id = NEW.resource_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM bump_calendar(r.location_id, r.tenant_id)
            FROM resources r WHERE r.id = OLD.resource_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- Resources: their own location (and the one they left).
CREATE FUNCTION bump_calendar_of_location() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM bump_calendar(NEW.location_id, NEW.tenant_id);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM bump_calendar(OLD.location_id, OLD.tenant_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER allocations_calendar AFTER INSERT OR UPDATE OR DELETE ON allocations
    FOR EACH ROW EXECUTE FUNCTION bump_calendar_of_resource();
CREATE TRIGGER blackouts_calendar AFTER INSERT OR UPDATE OR DELETE ON blackouts
    FOR EACH ROW EXECUTE FUNCTION bump_calendar_of_resource();
CREATE TRIGGER resources_calendar AFTER INSERT OR UPDATE OR DELETE ON resources
    FOR EACH ROW EXECUTE FUNCTION bump_calendar_of_location();
