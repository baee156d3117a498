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

CREATE TRIGGER protocols_clients_insert_lists AFTER INSERT ON protocols_clients BEGIN
    INSERT INTO protocols_client_list_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (NEW.id, NEW.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER protocols_clients_update_lists AFTER UPDATE ON protocols_clients BEGIN
    INSERT INTO protocols_client_list_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
    INSERT INTO protocols_client_list_versions (tenant_id, version)
        SELECT OLD.tenant_id, 1 WHERE OLD.tenant_id <> NEW.tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (NEW.id, NEW.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        SELECT OLD.id, OLD.tenant_id, 1 WHERE OLD.id <> NEW.id
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER protocols_clients_delete_lists AFTER DELETE ON protocols_clients BEGIN
    INSERT INTO protocols_client_list_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (OLD.id, OLD.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER protocols_sessions_insert_timeline AFTER INSERT ON protocols_sessions BEGIN
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (NEW.client_id, NEW.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER protocols_sessions_update_timeline AFTER UPDATE ON protocols_sessions BEGIN
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (NEW.client_id, NEW.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        SELECT OLD.client_id, OLD.tenant_id, 1 WHERE OLD.client_id <> NEW.client_id
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER protocols_sessions_delete_timeline AFTER DELETE ON protocols_sessions BEGIN
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (OLD.client_id, OLD.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER protocols_activities_insert_timeline AFTER INSERT ON protocols_activities BEGIN
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (NEW.client_id, NEW.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER protocols_activities_update_timeline AFTER UPDATE ON protocols_activities BEGIN
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (NEW.client_id, NEW.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        SELECT OLD.client_id, OLD.tenant_id, 1 WHERE OLD.client_id <> NEW.client_id
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER protocols_activities_delete_timeline AFTER DELETE ON protocols_activities BEGIN
    INSERT INTO protocols_timeline_versions (client_id, tenant_id, version)
        VALUES (OLD.client_id, OLD.tenant_id, 1)
        ON CONFLICT (client_id) DO UPDATE SET version = version + 1;
END;
