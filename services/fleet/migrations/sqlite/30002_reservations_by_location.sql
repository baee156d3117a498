-- ListReservations by location: a location's reservations in a window.
CREATE INDEX device_reservations_by_location
    ON device_reservations (tenant_id, location_id, start_us);
