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

ALTER TABLE booking_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_versions
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

CREATE FUNCTION bump_booking_list(location TEXT, tenant TEXT) RETURNS void AS $$
    INSERT INTO booking_versions (location_id, tenant_id, version)
        VALUES (location, tenant, 1)
        ON CONFLICT (location_id) DO UPDATE SET version = booking_versions.version + 1;
$$ LANGUAGE sql;

-- Bookings: their own location (and the one they left).
CREATE FUNCTION bump_booking_list_of_location() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM bump_booking_list(NEW.location_id, NEW.tenant_id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.location_id <> NEW.location_id) THEN
        PERFORM bump_booking_list(OLD.location_id, OLD.tenant_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- Findings: the location of their booking (a hold's are in no list; the
-- booking made from it is inserted, which bumps).
CREATE FUNCTION bump_booking_list_of_finding() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM bump_booking_list(b.location_id, b.tenant_id)
            FROM bookings b WHERE b.id = NEW.owner_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM bump_booking_list(b.location_id, b.tenant_id)
            FROM bookings b WHERE b.id = OLD.owner_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- Reserved devices: the location of their booking.
CREATE FUNCTION bump_booking_list_of_device() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM bump_booking_list(b.location_id, b.tenant_id)
            FROM bookings b WHERE b.id = NEW.booking_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM bump_booking_list(b.location_id, b.tenant_id)
            FROM bookings b WHERE b.id = OLD.booking_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER bookings_list AFTER INSERT OR UPDATE OR DELETE ON bookings
    FOR EACH ROW EXECUTE FUNCTION bump_booking_list_of_location();
CREATE TRIGGER booking_findings_list AFTER INSERT OR UPDATE OR DELETE ON booking_findings
    FOR EACH ROW EXECUTE FUNCTION bump_booking_list_of_finding();
CREATE TRIGGER booking_devices_list AFTER INSERT OR UPDATE OR DELETE ON booking_devices
    FOR EACH ROW EXECUTE FUNCTION bump_booking_list_of_device();
