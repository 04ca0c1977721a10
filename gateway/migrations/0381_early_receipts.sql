-- Gateway pipeline: delivery receipts that arrived before Herald recorded the
-- vendor's submit_sm_resp for their message (gateway.early_receipts). The vendor
-- is answered once the row is stored; housekeeping applies them again until the
-- message is found, and drops the ones older than the horizon.
CREATE TABLE early_receipts (
    id            bigserial PRIMARY KEY,
    vendor_id     bigint NOT NULL,
    receipted_id  text NOT NULL,            -- the vendor's message id quoted by the receipt
    event         text NOT NULL,            -- gateway.messages.Event value
    event_at      timestamptz NOT NULL,     -- when the receipt reached Herald (the event time used)
    error_code    text,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX early_receipts_age ON early_receipts (received_at);
