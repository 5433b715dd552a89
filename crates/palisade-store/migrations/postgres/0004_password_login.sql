-- Password login (Waldur's ObtainAuthToken): an Argon2id hash in PHC string
-- form per user (NULL: password login is not possible for that user), and the
-- failed attempts behind the lockout. Failures live in the database, not in a
-- node's memory, so the lockout holds across nodes.
ALTER TABLE users ADD COLUMN password_hash TEXT;

CREATE TABLE login_failures (
    id         BIGSERIAL PRIMARY KEY,
    username   TEXT   NOT NULL,
    client_ip  TEXT   NOT NULL,
    failed_at  BIGINT NOT NULL
);
CREATE INDEX login_failures_lookup ON login_failures (username, client_ip, failed_at);
CREATE INDEX login_failures_age ON login_failures (failed_at);
