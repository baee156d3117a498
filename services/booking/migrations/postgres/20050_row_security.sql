-- Row-level security: PostgreSQL's own wall between tenants, below every
-- query's tenant filter (crates/kit/src/db.rs). The services' connections
-- act as recovery_app (no BYPASSRLS) and name their tenant in the setting
-- recovery.tenant ('*': every tenant, for operators and the services' own
-- sweeps and relays). Every service's first RLS migration makes the role
-- (whichever runs first wins) and grants it the tables, present and future.
DO $$
BEGIN
    CREATE ROLE recovery_app NOLOGIN NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    EXECUTE format('GRANT recovery_app TO %I', current_user);
EXCEPTION WHEN OTHERS THEN NULL; -- a superuser needs no membership
END $$;
GRANT USAGE ON SCHEMA public TO recovery_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO recovery_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO recovery_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO recovery_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO recovery_app;
REVOKE ALL ON _sqlx_migrations FROM recovery_app;

-- Each tenant-owned table: enabled, forced (the owner too), one policy.

ALTER TABLE treatments ENABLE ROW LEVEL SECURITY;
ALTER TABLE treatments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON treatments
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE resources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON resources
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE blackouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE blackouts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON blackouts
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE holds ENABLE ROW LEVEL SECURITY;
ALTER TABLE holds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON holds
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE bookings ENABLE ROW LEVEL SECURITY;
ALTER TABLE bookings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON bookings
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE allocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE allocations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON allocations
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE booking_findings ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_findings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_findings
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE booking_devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_devices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_devices
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE booking_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_pending
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE booking_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_outbox
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

-- Scoped by '<method>/<tenant>'.
ALTER TABLE booking_idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking_idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON booking_idempotency
    USING (current_setting('recovery.tenant', true) = '*'
        OR scope LIKE '%/' || current_setting('recovery.tenant', true));
