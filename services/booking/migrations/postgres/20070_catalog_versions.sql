-- A tenant's catalog version: bumped in the same transaction as every
-- change to its treatments. A search reads it with the location's calendar
-- version (one statement) and reuses the treatment it read before when it
-- has not moved (treatments.rs), so a kept treatment is never older than
-- the last commit before the search began, whichever replica wrote it.
CREATE TABLE catalog_versions (
    tenant_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
);

ALTER TABLE catalog_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE catalog_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON catalog_versions
    USING (current_setting('recovery.tenant', true) IN ('*', tenant_id));

CREATE FUNCTION bump_catalog() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO catalog_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
            ON CONFLICT (tenant_id) DO UPDATE SET version = catalog_versions.version + 1;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO catalog_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
            ON CONFLICT (tenant_id) DO UPDATE SET version = catalog_versions.version + 1;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER treatments_catalog AFTER INSERT OR UPDATE OR DELETE ON treatments
    FOR EACH ROW EXECUTE FUNCTION bump_catalog();
