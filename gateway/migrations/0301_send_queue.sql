-- The durable send queue: one row per message waiting for (or leased to) a sender.
--
-- Rows are inserted in the transaction that stores the message, claimed with
-- FOR UPDATE SKIP LOCKED by any Herald process, and deleted when the vendor
-- accepted or finally refused the message. not_before is the single
-- "claimable from" time: a retry pushes it to the end of the backoff, a claim
-- pushes it to the end of the lease, so one index serves both and a crashed
-- worker's rows come back by themselves once its lease ends.

CREATE TABLE send_queue (
    message_id    uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    route         bigint[] NOT NULL CHECK (cardinality(route) >= 1), -- vendor ids, failover order
    position      integer NOT NULL DEFAULT 0 CHECK (position >= 0),  -- 0-based index into route
    vendor_id     bigint NOT NULL,          -- route[position + 1], a column for the index
    attempt       integer NOT NULL DEFAULT 0, -- claims so far on the current vendor
    not_before    timestamptz NOT NULL DEFAULT now(),
    claimed_by    text,
    claimed_until timestamptz,
    last_error    text,
    enqueued_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX send_queue_vendor_due ON send_queue (vendor_id, not_before);
CREATE INDEX send_queue_due ON send_queue (not_before);
