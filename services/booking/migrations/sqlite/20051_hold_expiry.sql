-- Expired holds are pruned every few minutes (holds.rs): find them
-- without reading every allocation and hold.
CREATE INDEX allocations_expiring ON allocations (expire_us) WHERE expire_us IS NOT NULL;
CREATE INDEX holds_unbooked_by_expiry ON holds (expire_us) WHERE booking_id IS NULL;
