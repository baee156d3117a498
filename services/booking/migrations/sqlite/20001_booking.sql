-- Booking owns treatments, resources, blackouts, holds, bookings, the
-- allocations that tie a booking or hold to its resources, and its
-- idempotency records. Instants: microseconds since the Unix epoch;
-- durations: seconds.

CREATE TABLE treatments (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    modality       TEXT NOT NULL,
    duration_s     BIGINT NOT NULL,
    -- "kind:count" joined by ';'
    needs          TEXT NOT NULL,
    step_s         BIGINT NOT NULL,
    turnover_s     BIGINT NOT NULL,
    min_notice_s   BIGINT NOT NULL,
    max_days_ahead BIGINT NOT NULL,
    late_cancel_s  BIGINT NOT NULL,
    max_per_day    BIGINT NOT NULL,
    archive_time   BIGINT,
    create_time    BIGINT NOT NULL,
    update_time    BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    updated_by     TEXT NOT NULL
);
CREATE INDEX treatments_by_tenant ON treatments (tenant_id, id);

CREATE TABLE resources (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    location_id     TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    turnover_s      BIGINT NOT NULL,
    precool_after_s BIGINT,
    precool_s       BIGINT,
    -- "D HH:MM HH:MM" joined by ';' (D: 1 = Monday)
    shifts          TEXT NOT NULL,
    create_time     BIGINT NOT NULL,
    update_time     BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_by      TEXT NOT NULL
);
CREATE INDEX resources_by_location ON resources (tenant_id, location_id, id);

CREATE TABLE blackouts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    resource_id TEXT NOT NULL REFERENCES resources (id),
    start_us    BIGINT NOT NULL,
    end_us      BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX blackouts_by_resource ON blackouts (resource_id, start_us);

CREATE TABLE holds (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    location_id  TEXT NOT NULL,
    treatment_id TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    start_us     BIGINT NOT NULL,
    end_us       BIGINT NOT NULL,
    expire_us    BIGINT NOT NULL,
    -- set when a booking was made from the hold
    booking_id   TEXT,
    create_time  BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);

CREATE TABLE bookings (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    location_id   TEXT NOT NULL,
    treatment_id  TEXT NOT NULL,
    modality      TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    start_us      BIGINT NOT NULL,
    end_us        BIGINT NOT NULL,
    status        TEXT NOT NULL,
    late_cancel   INTEGER NOT NULL,
    cancel_reason TEXT NOT NULL,
    create_time   BIGINT NOT NULL,
    update_time   BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_by    TEXT NOT NULL
);
CREATE INDEX bookings_by_location ON bookings (tenant_id, location_id, start_us);
CREATE INDEX bookings_by_client ON bookings (tenant_id, client_id, start_us);

-- What occupies a resource: an active booking or a hold (until it expires).
CREATE TABLE allocations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    -- the booking or hold
    owner_id    TEXT NOT NULL,
    -- the session plus the treatment's turnover
    start_us    BIGINT NOT NULL,
    end_us      BIGINT NOT NULL,
    -- end_us plus the resource's turnover: what may not overlap
    until_us    BIGINT NOT NULL,
    -- holds only
    expire_us   BIGINT
);
CREATE INDEX allocations_by_resource ON allocations (resource_id, start_us);
CREATE INDEX allocations_by_owner ON allocations (owner_id);

CREATE TABLE booking_idempotency (
    scope       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    BLOB NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (scope, request_id)
);
