-- Gateway pipeline: a vendor whose bind must be unique across Herald processes
-- (a carrier that allows one session per account). Such a bind is owned through
-- a PostgreSQL advisory lock held by the binding process (gateway.connectors).

ALTER TABLE vendors ADD COLUMN exclusive_bind boolean NOT NULL DEFAULT false;
