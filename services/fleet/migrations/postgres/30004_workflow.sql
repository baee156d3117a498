-- ReleaseBookingReservations: a booking's reservations (the booking id is
-- the reservation's purpose).
CREATE INDEX device_reservations_by_booking
    ON device_reservations (tenant_id, booking_id) WHERE booking_id IS NOT NULL;
