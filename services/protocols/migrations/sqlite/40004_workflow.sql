-- The studio's day (issue 9): sessions recorded from a booking, once per
-- booking, and erasures handed to other services through an outbox.

ALTER TABLE protocols_sessions ADD COLUMN booking_id TEXT;
-- NULLs are distinct: sessions typed by staff have no booking.
CREATE UNIQUE INDEX protocols_sessions_by_booking ON protocols_sessions (tenant_id, booking_id);

-- Events written in the transaction of the change they describe, handed on
-- by the relay (recovery_kit::outbox) and deleted once delivered.
CREATE TABLE protocols_outbox (
    id          TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    payload     BLOB NOT NULL,
    create_time BIGINT NOT NULL
);
