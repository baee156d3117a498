-- A new booking's warnings (booking_findings) are written by the statement
-- that writes the booking (store::bookings::insert). Each of them had a
-- deferred trigger that, at commit, inside the location's turn, looked up
-- its booking's location and called bump_booking_list for it: the same
-- location the booking's own trigger bumps (or skips, its calendar bumped
-- under the lock, 20093) at the same commit. That statement now marks the
-- booking fresh in a setting local to the transaction ('<' || id || '>' in
-- recovery.fresh_bookings) before it writes the warnings, and the insert
-- trigger of a finding of a fresh booking is skipped by its WHEN clause
-- (evaluated when the row is written, so the mark comes first). Every
-- other insert, and every update and delete, runs the trigger as before.
DROP TRIGGER booking_findings_list ON booking_findings;
CREATE CONSTRAINT TRIGGER booking_findings_list
    AFTER UPDATE OR DELETE ON booking_findings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_booking_list_of_finding();
CREATE CONSTRAINT TRIGGER booking_findings_list_insert
    AFTER INSERT ON booking_findings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (strpos(COALESCE(current_setting('recovery.fresh_bookings', true), ''),
                 '<' || NEW.owner_id || '>') = 0)
    EXECUTE FUNCTION bump_booking_list_of_finding();
