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

ALTER TABLE protocols_clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_clients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_clients
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_screenings ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_screenings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_screenings
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_waivers ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_waivers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_waivers
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_activities ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_activities FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_activities
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_sessions
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_templates FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_templates
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_assignments
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_audit
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_rule_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_rule_configs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_rule_configs
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

ALTER TABLE protocols_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_outbox
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

-- Answers belong to a screening: visible when their screening is.
ALTER TABLE protocols_screening_answers ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_screening_answers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_screening_answers
    USING (EXISTS (SELECT 1 FROM protocols_screenings s WHERE s.id = screening_id));

-- Scoped by '<method>/<tenant>'.
ALTER TABLE protocols_idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_idempotency
    USING (current_setting('recovery.tenant', true) = '*'
        OR scope LIKE '%/' || current_setting('recovery.tenant', true));
