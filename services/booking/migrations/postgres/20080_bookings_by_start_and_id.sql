-- A location's day and a client's bookings are listed by start and id: with
-- the id in the index the order comes from the index, so a page of 50 stops
-- after 50 rows instead of sorting every booking of the day first.
DROP INDEX bookings_by_location;
CREATE INDEX bookings_by_location ON bookings (tenant_id, location_id, start_us, id);
DROP INDEX bookings_by_client;
CREATE INDEX bookings_by_client ON bookings (tenant_id, client_id, start_us, id);
