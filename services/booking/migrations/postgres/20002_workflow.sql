-- The studio's day: what the rules said about a booking, the devices
-- reserved with it, the session's soreness and notes, the saga rows of
-- bookings whose devices are being reserved, and the outbox of events that
-- must reach fleet and protocols.

-- "kind:attachment:min_battery" joined by ';' (fleet enum numbers)
ALTER TABLE treatments ADD COLUMN device_needs TEXT NOT NULL DEFAULT '';

-- seconds; the progression's recommended length when the rules gave one
ALTER TABLE bookings ADD COLUMN recommended_s BIGINT;
ALTER TABLE bookings ADD COLUMN soreness_before BIGINT;
ALTER TABLE bookings ADD COLUMN soreness_after BIGINT;
ALTER TABLE bookings ADD COLUMN session_notes TEXT NOT NULL DEFAULT '';
ALTER TABLE holds ADD COLUMN recommended_s BIGINT;

-- The rules' warnings of a booking or hold (owner), in the rules' order.
CREATE TABLE booking_findings (
    owner_id  TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    position  BIGINT NOT NULL,
    reason    TEXT NOT NULL,
    message   TEXT NOT NULL,
    PRIMARY KEY (owner_id, position)
);

-- The fleet reservations a booking holds.
CREATE TABLE booking_devices (
    booking_id     TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    device_id      TEXT NOT NULL,
    -- fleet DeviceKind number
    kind           BIGINT NOT NULL,
    position       BIGINT NOT NULL,
    PRIMARY KEY (booking_id, reservation_id)
);

-- A booking (new or moving) whose devices are being reserved: written
-- before the first reservation, deleted by the booking's own transaction.
-- A row left by a crash is swept: its booking's stray reservations are
-- released.
CREATE TABLE booking_pending (
    booking_id  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    create_time BIGINT NOT NULL
);
CREATE INDEX booking_pending_by_time ON booking_pending (create_time);

-- The transactional outbox (recovery_kit::outbox).
CREATE TABLE booking_outbox (
    id          TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    create_time BIGINT NOT NULL
);
