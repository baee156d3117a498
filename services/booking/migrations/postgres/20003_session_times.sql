-- When staff actually started and completed a session: the client's history
-- records what happened, which may be earlier or later than the booked
-- window (a client taken early, a session run long).
ALTER TABLE bookings ADD COLUMN session_start_us BIGINT;
ALTER TABLE bookings ADD COLUMN session_end_us BIGINT;
