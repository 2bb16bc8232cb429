-- patbot's schema, version 1. Records are JSON documents (the store
-- package's types) with the columns queries select on beside them.

CREATE TABLE deliveries (
    id          text PRIMARY KEY,            -- X-GitHub-Delivery
    received_at timestamptz NOT NULL,
    job_id      bigint,                      -- the job it brought, if any
    record      jsonb NOT NULL               -- store.Delivery without job_id
);
CREATE INDEX deliveries_received_at ON deliveries (received_at);

CREATE TABLE jobs (
    id      bigserial PRIMARY KEY,
    record  jsonb NOT NULL,                  -- store.Job without its payload
    payload bytea
);

CREATE TABLE requests (
    org        text NOT NULL,                -- lower case
    id         bigint NOT NULL,
    state      text NOT NULL,
    created_at timestamptz,
    updated    timestamptz NOT NULL,
    record     jsonb NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE INDEX requests_state ON requests (state);

CREATE TABLE audit (
    seq    bigserial PRIMARY KEY,
    at     timestamptz NOT NULL,
    org    text NOT NULL,
    kind   text NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE cursors (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE timers (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    key         text NOT NULL,
    due         timestamptz NOT NULL,
    payload     bytea,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text NOT NULL DEFAULT '',
    lease_until timestamptz,
    UNIQUE (kind, key)
);
CREATE INDEX timers_due ON timers (due);
