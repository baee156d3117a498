-- The waitlist: clients waiting for a slot of a treatment at a location in
-- a window, and the offers made to them when a slot frees up. An offer is
-- a hold (its allocations carry the expiry) tied to an entry.

CREATE TABLE waitlist_entries (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    location_id  TEXT NOT NULL,
    treatment_id TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    -- the preferred resource, if any
    resource_id  TEXT,
    -- the window a slot may start and end in
    from_us      BIGINT NOT NULL,
    to_us        BIGINT NOT NULL,
    -- waiting, booked, left (expired: waiting past to_us, read at read time)
    status       TEXT NOT NULL,
    booking_id   TEXT,
    create_time  BIGINT NOT NULL,
    update_time  BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);
-- Join order is id order (UUIDv7).
CREATE INDEX waitlist_entries_waiting ON waitlist_entries (tenant_id, location_id, status, to_us);
CREATE INDEX waitlist_entries_by_client ON waitlist_entries (tenant_id, client_id);

CREATE TABLE waitlist_offers (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    location_id TEXT NOT NULL,
    entry_id    TEXT NOT NULL,
    treatment_id TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    -- the hold that keeps the slot (holds.id)
    hold_id     TEXT NOT NULL,
    start_us    BIGINT NOT NULL,
    end_us      BIGINT NOT NULL,
    expire_us   BIGINT NOT NULL,
    -- open, accepted, declined, expired, withdrawn
    status      TEXT NOT NULL,
    booking_id  TEXT,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
-- A client never has two open offers: the database says so, not only the
-- matcher.
CREATE UNIQUE INDEX waitlist_offers_one_open_per_client
    ON waitlist_offers (tenant_id, client_id) WHERE status = 'open';
CREATE UNIQUE INDEX waitlist_offers_by_hold ON waitlist_offers (hold_id);
CREATE INDEX waitlist_offers_by_entry ON waitlist_offers (entry_id);
CREATE INDEX waitlist_offers_open ON waitlist_offers (status, expire_us);
CREATE INDEX waitlist_offers_by_location ON waitlist_offers (tenant_id, location_id, status);

-- The offer sweep finds holds whose time ran out from their allocations.
CREATE INDEX allocations_lapsing ON allocations (expire_us) WHERE expire_us IS NOT NULL;
