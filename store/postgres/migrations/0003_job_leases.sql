-- Schema version 3: several replicas share the work. A job is claimed by
-- one replica (holder) for a lease, renewed while it runs; a job whose
-- replica stopped is taken over once its lease ends. Expand only: a
-- release that knows schema 2 runs on 3 (its inserts get enqueued_at from
-- the default, and it claims nothing).

ALTER TABLE jobs ADD COLUMN holder text;
ALTER TABLE jobs ADD COLUMN lease_until timestamptz;
ALTER TABLE jobs ADD COLUMN enqueued_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX jobs_lease_until ON jobs (lease_until);
