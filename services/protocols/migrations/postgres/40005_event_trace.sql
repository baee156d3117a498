-- The producer's W3C trace context with each outbox event
-- (recovery_kit::outbox): a delivery's span links to the span that made
-- the change. Empty when traces are not exported.
ALTER TABLE protocols_outbox ADD COLUMN traceparent TEXT;
