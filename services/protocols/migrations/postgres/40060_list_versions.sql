-- Versions of what the lists show, bumped in the same transaction as every
-- change to it (triggers, so that no write path can forget), whichever
-- replica or path wrote it. A list reads its version first and reuses the
-- page it built before when the version has not moved (kit::kept), so a
-- kept page is never older than the last commit before the call began.
--
-- A tenant's clients (ListClients): every change to its clients.
CREATE TABLE protocols_client_list_versions (
    tenant_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
);
-- A client's timeline (ListTimeline): its sessions, its activities, and the
-- client itself (erased or gone, the timeline is refused).
CREATE TABLE protocols_timeline_versions (
    client_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    version   BIGINT NOT NULL
);

ALTER TABLE protocols_client_list_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_client_list_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_client_list_versions
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));
ALTER TABLE protocols_timeline_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE protocols_timeline_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON protocols_timeline_versions
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

CREATE FUNCTION protocols_bump_client_list(tenant TEXT) RETURNS void AS $$
    INSERT INTO protocols_client_list_versions (tenant_id, version) VALUES (tenant, 1)
        ON CONFLICT (tenant_id) DO UPDATE
        SET version = protocols_client_list_versions.version + 1;
$$ LANGUAGE sql;

CREATE FUNCTION protocols_bump_timeline(client TEXT, tenant TEXT) RETURNS void AS $$
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (client, tenant, 1)
        ON CONFLICT (client_id) DO UPDATE
        SET version = protocols_timeline_versions.version + 1;
$$ LANGUAGE sql;

-- Clients: their tenant's list and their own timeline.
CREATE FUNCTION protocols_bump_lists_of_client() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM protocols_bump_client_list(NEW.tenant_id);
        PERFORM protocols_bump_timeline(NEW.id, NEW.tenant_id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.tenant_id <> NEW.tenant_id) THEN
        PERFORM protocols_bump_client_list(OLD.tenant_id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id <> NEW.id) THEN
        PERFORM protocols_bump_timeline(OLD.id, OLD.tenant_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- Sessions and activities: their client's timeline.
CREATE FUNCTION protocols_bump_timeline_of_entry() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM protocols_bump_timeline(NEW.client_id, NEW.tenant_id);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.client_id <> NEW.client_id) THEN
        PERFORM protocols_bump_timeline(OLD.client_id, OLD.tenant_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER protocols_clients_lists AFTER INSERT OR UPDATE OR DELETE ON protocols_clients
    FOR EACH ROW EXECUTE FUNCTION protocols_bump_lists_of_client();
CREATE TRIGGER protocols_sessions_timeline AFTER INSERT OR UPDATE OR DELETE ON protocols_sessions
    FOR EACH ROW EXECUTE FUNCTION protocols_bump_timeline_of_entry();
CREATE TRIGGER protocols_activities_timeline AFTER INSERT OR UPDATE OR DELETE ON protocols_activities
    FOR EACH ROW EXECUTE FUNCTION protocols_bump_timeline_of_entry();
