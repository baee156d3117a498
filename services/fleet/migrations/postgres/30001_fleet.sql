-- Fleet owns devices, their reservations, telemetry readings, maintenance
-- records and its idempotency records. Ids are UUIDv7 text; instants are
-- microseconds since the Unix epoch; flags are 0/1.

CREATE TABLE devices (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    location_id         TEXT NOT NULL,
    -- percussion_massager, compression_system, cryo_chamber, other
    kind                TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    serial_number       TEXT NOT NULL,
    model               TEXT NOT NULL,
    firmware_version    TEXT NOT NULL,
    -- "YYYY-MM-DD" or ''
    purchase_date       TEXT NOT NULL,
    speed_levels        BIGINT,
    -- attachment names joined by ','
    attachments         TEXT NOT NULL,
    pressure_levels     BIGINT,
    zones               BIGINT,
    target_temp_c       DOUBLE PRECISION,
    ready_threshold_c   DOUBLE PRECISION,
    -- stored state: available, in_use, charging, maintenance, offline,
    -- retired ("reserved" and a missed heartbeat are derived when read)
    state               TEXT NOT NULL,
    battery_percent     BIGINT,
    charging            BIGINT NOT NULL DEFAULT 0,
    temperature_c       DOUBLE PRECISION,
    reading_time        BIGINT,
    last_seen           BIGINT,
    usage_seconds       BIGINT NOT NULL DEFAULT 0,
    usage_since_service BIGINT NOT NULL DEFAULT 0,
    last_service_time   BIGINT,
    create_time         BIGINT NOT NULL,
    update_time         BIGINT NOT NULL,
    retire_time         BIGINT,
    created_by          TEXT NOT NULL,
    updated_by          TEXT NOT NULL,
    UNIQUE (tenant_id, serial_number)
);
CREATE INDEX devices_by_location ON devices (tenant_id, location_id, id);

CREATE TABLE device_reservations (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    device_id       TEXT NOT NULL REFERENCES devices (id),
    location_id     TEXT NOT NULL,
    start_us        BIGINT NOT NULL,
    end_us          BIGINT NOT NULL,
    booking_id      TEXT,
    staff_member_id TEXT,
    -- held, checked_out, completed, released
    state           TEXT NOT NULL,
    check_out_time  BIGINT,
    check_in_time   BIGINT,
    usage_seconds   BIGINT NOT NULL DEFAULT 0,
    speed_level     BIGINT,
    attachment      TEXT,
    pressure_level  BIGINT,
    create_time     BIGINT NOT NULL,
    update_time     BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    CHECK (start_us < end_us)
);
CREATE INDEX device_reservations_by_device ON device_reservations (device_id, start_us);
-- No two active reservations of one device overlap, whatever races.
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE device_reservations ADD CONSTRAINT device_reservations_no_overlap
    EXCLUDE USING gist (device_id WITH =, int8range(start_us, end_us, '[)') WITH &&)
    WHERE (state IN ('held', 'checked_out'));

CREATE TABLE device_readings (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    reading_time     BIGINT NOT NULL,
    battery_percent  BIGINT,
    charging         BIGINT NOT NULL,
    temperature_c    DOUBLE PRECISION,
    firmware_version TEXT NOT NULL,
    receive_time     BIGINT NOT NULL
);
CREATE INDEX device_readings_by_device ON device_readings (device_id, seq);

CREATE TABLE maintenance_records (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    device_id      TEXT NOT NULL REFERENCES devices (id),
    reason         TEXT NOT NULL,
    notes          TEXT NOT NULL,
    start_time     BIGINT NOT NULL,
    end_time       BIGINT,
    usage_at_start BIGINT NOT NULL,
    started_by     TEXT NOT NULL,
    ended_by       TEXT
);
CREATE INDEX maintenance_records_by_device ON maintenance_records (device_id, id);

CREATE TABLE fleet_idempotency (
    scope       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    BYTEA NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (scope, request_id)
);
