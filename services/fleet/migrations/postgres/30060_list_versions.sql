-- A tenant's device list version: bumped in the same transaction as every
-- change to its devices and their reservations (triggers, so that no write
-- path can forget), whichever replica or path wrote it. `ListDevices`
-- reads it first and reuses the page it built before when it has not
-- moved and the clock has not passed the page's first time-driven change
-- (a device going offline, a reservation starting or ending; devices.rs),
-- so a kept page is what a read would return.
--
-- Hubs write their devices' rows concurrently with every batch of
-- readings: one row per tenant would make their transactions wait for each
-- other's commits. So the version is the sum of 32 shards, a device's
-- writes bumping its own shard: every bump still moves the sum.
CREATE TABLE fleet_list_versions (
    tenant_id TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, shard)
);

ALTER TABLE fleet_list_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet_list_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON fleet_list_versions
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

CREATE FUNCTION fleet_bump_list(tenant TEXT, device TEXT) RETURNS void AS $$
    INSERT INTO fleet_list_versions (tenant_id, shard, version)
        VALUES (tenant, hashtext(device) & 31, 1)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = fleet_list_versions.version + 1;
$$ LANGUAGE sql;

CREATE FUNCTION fleet_bump_list_of_device() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM fleet_bump_list(NEW.tenant_id, NEW.id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.tenant_id <> NEW.tenant_id) THEN
        PERFORM fleet_bump_list(OLD.tenant_id, OLD.id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION fleet_bump_list_of_reservation() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM fleet_bump_list(NEW.tenant_id, NEW.device_id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.tenant_id <> NEW.tenant_id) THEN
        PERFORM fleet_bump_list(OLD.tenant_id, OLD.device_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER devices_list AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION fleet_bump_list_of_device();
CREATE TRIGGER device_reservations_list AFTER INSERT OR UPDATE OR DELETE ON device_reservations
    FOR EACH ROW EXECUTE FUNCTION fleet_bump_list_of_reservation();
