-- Durable answers: an assistant message exists from the moment its
-- generation starts and is saved as it grows. `generating_lease` holds the
-- generation's thread lease while it runs (NULL once it finished or was
-- interrupted), so a row whose lease is gone is an interrupted answer.
ALTER TABLE messages ADD COLUMN generating_lease TEXT;
CREATE INDEX messages_generating ON messages (generating_lease) WHERE generating_lease IS NOT NULL;
