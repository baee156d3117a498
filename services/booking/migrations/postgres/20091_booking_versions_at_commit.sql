-- The bookings version is bumped when a change commits, no longer when
-- the row is written: a booking writes its own rows (the booking, its
-- findings, its devices) before it takes its location's turn (gates.rs),
-- and must not hold the location's bookings version row meanwhile: a
-- transaction holding the turn may write a booking of that location too,
-- and would wait for it. At commit every change takes it last, after its
-- location's lock. What a list reads is unchanged: the bump still commits
-- with the change, in its transaction.
DROP TRIGGER bookings_list ON bookings;
DROP TRIGGER booking_findings_list ON booking_findings;
DROP TRIGGER booking_devices_list ON booking_devices;

CREATE CONSTRAINT TRIGGER bookings_list AFTER INSERT OR UPDATE OR DELETE ON bookings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_booking_list_of_location();
CREATE CONSTRAINT TRIGGER booking_findings_list
    AFTER INSERT OR UPDATE OR DELETE ON booking_findings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_booking_list_of_finding();
CREATE CONSTRAINT TRIGGER booking_devices_list
    AFTER INSERT OR UPDATE OR DELETE ON booking_devices
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_booking_list_of_device();
