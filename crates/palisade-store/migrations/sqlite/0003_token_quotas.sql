-- Per-user token quotas (reference 1.6) and per-message token usage.
-- Limits: NULL = the system default, -1 = unlimited. Usage counters are reset
-- lazily when their last reset falls before the current period's start.
CREATE TABLE token_quotas (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    daily_limit       BIGINT CHECK (daily_limit >= -1),
    weekly_limit      BIGINT CHECK (weekly_limit >= -1),
    monthly_limit     BIGINT CHECK (monthly_limit >= -1),
    daily_usage       BIGINT NOT NULL DEFAULT 0 CHECK (daily_usage >= 0),
    weekly_usage      BIGINT NOT NULL DEFAULT 0 CHECK (weekly_usage >= 0),
    monthly_usage     BIGINT NOT NULL DEFAULT 0 CHECK (monthly_usage >= 0),
    daily_reset_at    BIGINT NOT NULL,
    weekly_reset_at   BIGINT NOT NULL,
    monthly_reset_at  BIGINT NOT NULL
);

ALTER TABLE messages ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
