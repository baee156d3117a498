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

ALTER TABLE devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE devices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON devices
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE device_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON device_reservations
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE device_readings ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_readings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON device_readings
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE maintenance_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE maintenance_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON maintenance_records
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

-- Scoped by '<method>/<tenant>'.
ALTER TABLE fleet_idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet_idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON fleet_idempotency
    USING (current_setting('recovery.tenant', true) = '*'
        OR scope LIKE '%/' || current_setting('recovery.tenant', true));
