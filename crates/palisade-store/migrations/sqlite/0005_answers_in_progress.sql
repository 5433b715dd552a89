-- Durable answers: an assistant message exists from the moment its
-- generation starts and is saved as it grows. `generating_lease` holds the
-- generation's thread lease while it runs (NULL once it finished or was
-- interrupted), so a row whose lease is gone is an interrupted answer.
-- `stream_transcript` is the NDJSON its client was sent so far, so a client
-- on any node can follow the answer (`GET /api/chat-threads/{uuid}/stream/`);
-- it is kept only for the thread's newest answer.
ALTER TABLE messages ADD COLUMN generating_lease TEXT;
ALTER TABLE messages ADD COLUMN stream_transcript TEXT;
CREATE INDEX messages_generating ON messages (thread_id) WHERE generating_lease IS NOT NULL;
