-- A tenant's catalog version: bumped in the same transaction as every
-- change to its treatments. A search reads it with the location's calendar
-- version (one statement) and reuses the treatment it read before when it
-- has not moved (treatments.rs), so a kept treatment is never older than
-- the last commit before the search began, whichever replica wrote it.
CREATE TABLE catalog_versions (
    tenant_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
);

CREATE TRIGGER treatments_insert_catalog AFTER INSERT ON treatments BEGIN
    INSERT INTO catalog_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER treatments_update_catalog AFTER UPDATE ON treatments BEGIN
    INSERT INTO catalog_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
    INSERT INTO catalog_versions (tenant_id, version)
        SELECT OLD.tenant_id, 1 WHERE OLD.tenant_id <> NEW.tenant_id
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER treatments_delete_catalog AFTER DELETE ON treatments BEGIN
    INSERT INTO catalog_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
