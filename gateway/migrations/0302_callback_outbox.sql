-- Outbox of HTTP callbacks (delivery reports and incoming messages) to clients.
--
-- A row is written in the transaction that changes what it reports, so a
-- committed status change always has its callback and a rolled-back one never
-- does. Rows sharing an order_key (the message id) are delivered one at a time
-- in id order: only the oldest pending row of a key may be claimed.

CREATE TABLE callback_outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('dlr', 'mo')),
    order_key       text NOT NULL,
    partner_id      bigint REFERENCES partners (id),
    api_key_id      bigint,
    url             text NOT NULL,
    body            text NOT NULL,           -- the exact JSON sent and signed
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'gave_up')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),  -- also the lease end while claimed
    claimed_by      text,
    last_status     integer,                 -- HTTP status of the last attempt
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX callback_outbox_due ON callback_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX callback_outbox_key ON callback_outbox (order_key, id) WHERE state = 'pending';
