-- The sweep: held reservations whose window started or ended lately.
CREATE INDEX device_reservations_held_by_start
    ON device_reservations (start_us) WHERE state = 'held';
CREATE INDEX device_reservations_held_by_end
    ON device_reservations (end_us) WHERE state = 'held';
