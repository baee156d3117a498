-- Tenancy owns tenants, locations, API keys and its idempotency records.
-- Ids are UUIDv7 text; instants are microseconds since the Unix epoch.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    create_time  BIGINT NOT NULL,
    update_time  BIGINT NOT NULL
);

CREATE TABLE locations (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    display_name  TEXT NOT NULL,
    time_zone     TEXT NOT NULL,
    -- "D HH:MM HH:MM" ranges joined by ';' (D: 1 = Monday … 7 = Sunday)
    weekly_hours  TEXT NOT NULL,
    -- "YYYY-MM-DD" dates joined by ';'
    closure_dates TEXT NOT NULL,
    create_time   BIGINT NOT NULL,
    update_time   BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_by    TEXT NOT NULL
);
CREATE INDEX locations_by_tenant ON locations (tenant_id, id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    -- NULL for operator keys, which act on every tenant
    tenant_id    TEXT REFERENCES tenants (id),
    role         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    -- SHA-256 of the secret, hex; the secret itself is never stored
    key_hash     TEXT NOT NULL UNIQUE,
    create_time  BIGINT NOT NULL,
    revoke_time  BIGINT,
    created_by   TEXT NOT NULL
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);

CREATE TABLE tenancy_idempotency (
    scope       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    BYTEA NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (scope, request_id)
);
