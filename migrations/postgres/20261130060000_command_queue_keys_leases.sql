-- Asynchronous commands honour the client's Idempotency-Key: at most one job per (domain, key),
-- enforced by a unique index, so two concurrent submissions cannot both be queued; the request's
-- hash tells a repeat (same command and payload) from a reuse of the key (another one).
-- A claimed job carries its claimer and a lease the claimer renews while the job runs; a job
-- whose lease has run out may be claimed again (its idempotency key `async-<id>` makes a rerun
-- replay the stored answer).
ALTER TABLE command_queue ADD COLUMN idempotency_key TEXT;
ALTER TABLE command_queue ADD COLUMN request_hash TEXT;
ALTER TABLE command_queue ADD COLUMN claimed_by TEXT;
ALTER TABLE command_queue ADD COLUMN lease_until BIGINT;
CREATE UNIQUE INDEX command_queue_idempotency ON command_queue (domain, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX command_queue_domain_due ON command_queue (domain, state, not_before);
CREATE INDEX command_queue_leases ON command_queue (state, lease_until);
