-- The lapsed leases a poll looks for (`state = 'running' AND lease_until < now`), served by an
-- index as on PostgreSQL, instead of a scan of every running job.
CREATE INDEX command_queue_leases ON command_queue (state, lease_until);
