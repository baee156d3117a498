-- Fleet tells booking what it must know about its bookable devices
-- (chambers, compression systems): their location, name, state and, for
-- chambers, whether they are cold. An event goes into the outbox, in the
-- transaction of the change, only when that changes; told holds what was
-- last told (the encoded message), so a burst of telemetry sends nothing.

ALTER TABLE devices ADD COLUMN told BLOB;

-- The transactional outbox (recovery_kit::outbox).
CREATE TABLE fleet_outbox (
    id          TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    payload     BLOB NOT NULL,
    create_time BIGINT NOT NULL,
    traceparent TEXT
);
