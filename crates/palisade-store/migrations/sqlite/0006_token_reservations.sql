-- Token quota reservations: before an answer is generated for a user with a
-- limit, its cost is added to the user's usage at once (so concurrent
-- requests cannot all pass a check that only looks at past usage). The
-- amount is kept on the answer's row until whoever ends the answer — its
-- generation, or the recovery sweep when its node died — settles it to the
-- real usage, exactly once.
ALTER TABLE messages ADD COLUMN reserved_tokens BIGINT NOT NULL DEFAULT 0;
