-- Protocols owns clients, their screenings, waivers, activities and recovery
-- sessions, protocol templates and assignments, its audit trail and its
-- idempotency records. Ids are UUIDv7 text; instants are microseconds since
-- the Unix epoch; every row carries its tenant.

CREATE TABLE protocols_clients (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL,
    given_name             TEXT NOT NULL,
    family_name            TEXT NOT NULL,
    email                  TEXT NOT NULL,
    phone                  TEXT NOT NULL,
    -- "YYYY-MM-DD" or ''
    date_of_birth          TEXT NOT NULL,
    emergency_name         TEXT NOT NULL,
    emergency_phone        TEXT NOT NULL,
    emergency_relationship TEXT NOT NULL,
    -- lowercased name, email and phone, for search
    search_text            TEXT NOT NULL,
    create_time            BIGINT NOT NULL,
    update_time            BIGINT NOT NULL,
    created_by             TEXT NOT NULL,
    updated_by             TEXT NOT NULL,
    -- set when the personal fields were erased
    erase_time             BIGINT
);
CREATE INDEX protocols_clients_by_tenant ON protocols_clients (tenant_id, id);

CREATE TABLE protocols_screenings (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    client_id             TEXT NOT NULL REFERENCES protocols_clients (id),
    questionnaire_version TEXT NOT NULL,
    systolic              BIGINT,
    diastolic             BIGINT,
    measure_time          BIGINT,
    record_time           BIGINT NOT NULL,
    recorded_by           TEXT NOT NULL
);
CREATE INDEX protocols_screenings_by_client ON protocols_screenings (tenant_id, client_id, id);

CREATE TABLE protocols_screening_answers (
    screening_id TEXT NOT NULL REFERENCES protocols_screenings (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    condition    TEXT NOT NULL,
    -- 1 present, 0 absent
    present      BIGINT NOT NULL,
    detail       TEXT NOT NULL,
    answer_time  BIGINT NOT NULL,
    answered_by  TEXT NOT NULL,
    PRIMARY KEY (screening_id, position)
);

CREATE TABLE protocols_waivers (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    client_id     TEXT NOT NULL REFERENCES protocols_clients (id),
    version       TEXT NOT NULL,
    sign_time     BIGINT NOT NULL,
    expire_time   BIGINT,
    signer_name   TEXT NOT NULL,
    guardian_name TEXT NOT NULL,
    record_time   BIGINT NOT NULL,
    recorded_by   TEXT NOT NULL
);
CREATE INDEX protocols_waivers_by_client ON protocols_waivers (tenant_id, client_id, id);

CREATE TABLE protocols_activities (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    client_id        TEXT NOT NULL REFERENCES protocols_clients (id),
    kind             TEXT NOT NULL,
    start_time       BIGINT NOT NULL,
    end_time         BIGINT NOT NULL,
    distance_meters  BIGINT NOT NULL,
    perceived_effort BIGINT NOT NULL,
    notes            TEXT NOT NULL,
    create_time      BIGINT NOT NULL,
    created_by       TEXT NOT NULL
);
CREATE INDEX protocols_activities_by_client ON protocols_activities (tenant_id, client_id, start_time, id);

CREATE TABLE protocols_sessions (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    client_id       TEXT NOT NULL REFERENCES protocols_clients (id),
    modality        TEXT NOT NULL,
    start_time      BIGINT NOT NULL,
    duration_us     BIGINT NOT NULL,
    device_id       TEXT NOT NULL,
    -- JSON object of strings
    device_settings TEXT NOT NULL,
    soreness_before BIGINT,
    soreness_after  BIGINT,
    notes           TEXT NOT NULL,
    location_id     TEXT NOT NULL,
    create_time     BIGINT NOT NULL,
    created_by      TEXT NOT NULL
);
CREATE INDEX protocols_sessions_by_client ON protocols_sessions (tenant_id, client_id, start_time, id);

CREATE TABLE protocols_templates (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description  TEXT NOT NULL,
    -- the validated steps, a protobuf-encoded ProtocolTemplate holding only steps
    steps        BLOB NOT NULL,
    create_time  BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);
CREATE INDEX protocols_templates_by_tenant ON protocols_templates (tenant_id, id);

CREATE TABLE protocols_assignments (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    client_id          TEXT NOT NULL REFERENCES protocols_clients (id),
    template_id        TEXT NOT NULL REFERENCES protocols_templates (id),
    anchor_activity_id TEXT NOT NULL,
    anchor_start       BIGINT NOT NULL,
    anchor_end         BIGINT NOT NULL,
    assign_time        BIGINT NOT NULL,
    assigned_by        TEXT NOT NULL
);
CREATE INDEX protocols_assignments_by_client ON protocols_assignments (tenant_id, client_id, id);

-- Who changed what, when: written in the same transaction as the change.
-- Erasure empties `detail` (it may hold personal data) and keeps the rest.
CREATE TABLE protocols_audit (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    occur_time  BIGINT NOT NULL
);
CREATE INDEX protocols_audit_by_client ON protocols_audit (tenant_id, client_id, id);

CREATE TABLE protocols_idempotency (
    scope       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    BLOB NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (scope, request_id)
);
