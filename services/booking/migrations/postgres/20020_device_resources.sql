-- One chamber, one record: a resource that is a fleet device carries its
-- id and what fleet last told about it (fleet's events, through
-- SyncDevice), so a search never asks fleet. A booking on a resource whose
-- device is out of service is at risk (derived when read). Each location's
-- booking settings, and the audit of bookings moved between resources.

-- the fleet device this resource is; NULL for resources made by hand
ALTER TABLE resources ADD COLUMN device_id TEXT;
-- available, maintenance, offline or retired (fleet's state names)
ALTER TABLE resources ADD COLUMN device_state TEXT;
-- chambers: 1 at ready temperature, 0 warm; NULL: no temperature reported
ALTER TABLE resources ADD COLUMN device_cold BIGINT;
-- when booking heard the current device state
ALTER TABLE resources ADD COLUMN device_since BIGINT;
CREATE UNIQUE INDEX resources_by_device ON resources (tenant_id, device_id)
    WHERE device_id IS NOT NULL;

CREATE TABLE booking_location_settings (
    tenant_id     TEXT NOT NULL,
    location_id   TEXT NOT NULL,
    auto_reassign BIGINT NOT NULL,
    update_time   BIGINT NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, location_id)
);

-- Who moved which booking from which resource to which, when and why.
CREATE TABLE booking_reassignments (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    booking_id       TEXT NOT NULL,
    from_resource_id TEXT NOT NULL,
    to_resource_id   TEXT NOT NULL,
    -- 1: moved by the location's auto_reassign setting
    automatic        BIGINT NOT NULL,
    -- the API key id, or the service for an automatic move
    actor            TEXT NOT NULL,
    -- e.g. "device maintenance"
    cause            TEXT NOT NULL,
    create_time      BIGINT NOT NULL
);
CREATE INDEX booking_reassignments_by_booking ON booking_reassignments (booking_id, id);
