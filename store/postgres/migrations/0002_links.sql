-- Schema version 2: the Slack users who proved, by signing in to GitHub,
-- which GitHub account is theirs; and the sign-ins in progress.

CREATE TABLE links (
    slack_user text PRIMARY KEY,
    github_id  bigint NOT NULL UNIQUE,           -- one Slack user per account
    record     jsonb NOT NULL                     -- store.Link (its token sealed)
);

CREATE TABLE sign_ins (
    key     text PRIMARY KEY,                     -- a hash: the value is the browser's
    expires timestamptz NOT NULL,
    record  jsonb NOT NULL                        -- store.SignIn
);
CREATE INDEX sign_ins_expires ON sign_ins (expires);
