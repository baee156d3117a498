-- Two identical indexes covered the allocations that expire (holds'):
-- `allocations_lapsing` (20010, for the offer sweep) and
-- `allocations_expiring` (20051, for the hold pruner). Every hold written
-- or handed over updated both. Both sweeps read through the one kept.
DROP INDEX IF EXISTS allocations_expiring;
