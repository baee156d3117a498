-- ListAuditEvents reads newest first by time, for one client or the whole
-- tenant.
CREATE INDEX protocols_audit_by_client_time ON protocols_audit (tenant_id, client_id, occur_time, id);
CREATE INDEX protocols_audit_by_tenant_time ON protocols_audit (tenant_id, occur_time, id);
