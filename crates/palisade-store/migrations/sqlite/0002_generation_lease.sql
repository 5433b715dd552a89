-- One generation per thread at a time, across nodes: a lease row-level on the
-- thread (who holds it, until when), and the cancel flag a generation polls.
ALTER TABLE threads ADD COLUMN generation_lease TEXT;
ALTER TABLE threads ADD COLUMN generation_lease_expires BIGINT;
ALTER TABLE threads ADD COLUMN cancel_requested_at BIGINT;
