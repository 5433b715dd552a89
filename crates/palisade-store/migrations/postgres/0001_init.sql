-- Palisade schema, PostgreSQL flavour. Timestamps are BIGINT microseconds since the
-- Unix epoch (UTC) in both backends, so ordering is exact and row decoding is shared.
-- UUIDs are stored as 32 lowercase hex characters, the form the API renders.

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    uuid        TEXT    NOT NULL UNIQUE,
    username    TEXT    NOT NULL UNIQUE,
    full_name   TEXT    NOT NULL DEFAULT '',
    email       TEXT    NOT NULL DEFAULT '',
    is_staff    BOOLEAN NOT NULL DEFAULT FALSE,
    is_support  BOOLEAN NOT NULL DEFAULT FALSE,
    is_active   BOOLEAN NOT NULL DEFAULT TRUE,
    created     BIGINT  NOT NULL
);

CREATE TABLE api_tokens (
    id       BIGSERIAL PRIMARY KEY,
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix   TEXT    NOT NULL UNIQUE,
    hash     BYTEA    NOT NULL,
    created  BIGINT  NOT NULL,
    expires  BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE chat_sessions (
    id        BIGSERIAL PRIMARY KEY,
    uuid      TEXT    NOT NULL UNIQUE,
    user_id   BIGINT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    created   BIGINT  NOT NULL,
    modified  BIGINT  NOT NULL,
    -- Threads in this session, kept by the store when it creates one, so an
    -- unfiltered thread list needs no COUNT over the user's threads.
    thread_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX chat_sessions_created ON chat_sessions (created);

CREATE TABLE threads (
    id            BIGSERIAL PRIMARY KEY,
    uuid          TEXT    NOT NULL UNIQUE,
    session_id    BIGINT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL DEFAULT 'New chat',
    flags         TEXT    NOT NULL DEFAULT '{}',
    -- Mirrors of flags.is_flagged / flags.max_severity, written together with
    -- `flags`, so the list filters are plain indexed comparisons.
    is_flagged    BOOLEAN NOT NULL DEFAULT FALSE,
    max_severity  TEXT    NOT NULL DEFAULT 'none',
    is_archived   BOOLEAN NOT NULL DEFAULT FALSE,
    created       BIGINT  NOT NULL,
    modified      BIGINT  NOT NULL
);
CREATE INDEX threads_session_created ON threads (session_id, created);
CREATE INDEX threads_session_modified ON threads (session_id, modified);
CREATE INDEX threads_session_flagged ON threads (session_id, is_flagged, created);
CREATE INDEX threads_session_archived ON threads (session_id, is_archived, created);
CREATE INDEX threads_session_severity ON threads (session_id, max_severity, created);
CREATE INDEX threads_created ON threads (created);
CREATE INDEX threads_modified ON threads (modified);
-- The moderators' view: flagged threads of every user, newest first.
CREATE INDEX threads_flagged ON threads (is_flagged, created);

CREATE TABLE messages (
    id                    BIGSERIAL PRIMARY KEY,
    uuid                  TEXT    NOT NULL UNIQUE,
    thread_id             BIGINT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    role                  TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    content               TEXT    NOT NULL,
    sequence_index        BIGINT  NOT NULL CHECK (sequence_index >= 0),
    replaces_id           BIGINT REFERENCES messages (id) ON DELETE SET NULL,
    is_flagged            BOOLEAN NOT NULL DEFAULT FALSE,
    severity              TEXT    NOT NULL DEFAULT 'none',
    injection_categories  TEXT    NOT NULL DEFAULT '[]',
    pii_categories        TEXT    NOT NULL DEFAULT '[]',
    action_taken          TEXT    NOT NULL DEFAULT 'allow',
    created               BIGINT  NOT NULL
);
-- The reference's partial unique constraint: original (non-replacement) rows only.
CREATE UNIQUE INDEX unique_active_message_sequence
    ON messages (thread_id, sequence_index) WHERE replaces_id IS NULL;
CREATE INDEX messages_thread_sequence ON messages (thread_id, sequence_index);
CREATE INDEX messages_replaces ON messages (replaces_id);
CREATE INDEX messages_flagged ON messages (is_flagged);

CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    uuid        TEXT    NOT NULL UNIQUE,
    event_type  TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    actor_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    target_id   BIGINT REFERENCES users (id) ON DELETE CASCADE,
    context     TEXT    NOT NULL DEFAULT '{}',
    created     BIGINT  NOT NULL
);
CREATE INDEX audit_events_target ON audit_events (target_id, created);
CREATE INDEX audit_events_type ON audit_events (event_type, created);
