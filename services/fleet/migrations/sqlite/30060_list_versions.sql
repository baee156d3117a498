-- A tenant's device list version: bumped in the same transaction as every
-- change to its devices and their reservations (triggers, so that no write
-- path can forget), whichever replica or path wrote it. `ListDevices`
-- reads it first and reuses the page it built before when it has not
-- moved and the clock has not passed the page's first time-driven change
-- (a device going offline, a reservation starting or ending; devices.rs),
-- so a kept page is what a read would return.
--
-- The version is the sum of the tenant's shards (PostgreSQL spreads
-- concurrent hubs' writes over 32); SQLite writes one at a time, so every
-- bump goes to shard 0.
CREATE TABLE fleet_list_versions (
    tenant_id TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, shard)
);

CREATE TRIGGER devices_insert_list AFTER INSERT ON devices BEGIN
    INSERT INTO fleet_list_versions (tenant_id, shard, version) VALUES (NEW.tenant_id, 0, 1)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER devices_update_list AFTER UPDATE ON devices BEGIN
    INSERT INTO fleet_list_versions (tenant_id, shard, version) VALUES (NEW.tenant_id, 0, 1)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
    INSERT INTO fleet_list_versions (tenant_id, shard, version)
        SELECT OLD.tenant_id, 0, 1 WHERE OLD.tenant_id <> NEW.tenant_id
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER devices_delete_list AFTER DELETE ON devices BEGIN
    INSERT INTO fleet_list_versions (tenant_id, shard, version) VALUES (OLD.tenant_id, 0, 1)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER device_reservations_insert_list AFTER INSERT ON device_reservations BEGIN
    INSERT INTO fleet_list_versions (tenant_id, shard, version) VALUES (NEW.tenant_id, 0, 1)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER device_reservations_update_list AFTER UPDATE ON device_reservations BEGIN
    INSERT INTO fleet_list_versions (tenant_id, shard, version) VALUES (NEW.tenant_id, 0, 1)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
    INSERT INTO fleet_list_versions (tenant_id, shard, version)
        SELECT OLD.tenant_id, 0, 1 WHERE OLD.tenant_id <> NEW.tenant_id
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER device_reservations_delete_list AFTER DELETE ON device_reservations BEGIN
    INSERT INTO fleet_list_versions (tenant_id, shard, version) VALUES (OLD.tenant_id, 0, 1)
        ON CONFLICT (tenant_id, shard) DO UPDATE SET version = version + 1;
END;
