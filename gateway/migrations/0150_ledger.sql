-- Billing area, part 6: the ledger and the per-message charges behind it.
--
-- Every change of a balance is one row of transactions (amount signed:
-- negative is a debit), written in the same transaction as the change.
-- Traffic is written aggregated: one row per payer, sender, user, type and
-- description per charged batch, with per-MCCMNC lines in
-- transaction_details. For traffic of a reseller's client each level of the
-- chain has its own row: the client's (counterparty = the reseller) and the
-- reseller's (counterparty = its parent), tied by origin_partner_id, so each
-- partner's income, cost and margin can be read back.

CREATE TABLE transactions (
    id                  bigserial PRIMARY KEY,
    partner_id          bigint NOT NULL REFERENCES partners (id),   -- whose balance moved
    counterparty_id     bigint REFERENCES partners (id),            -- the parent paid (or refunding)
    origin_partner_id   bigint REFERENCES partners (id),            -- whose traffic it was
    user_id             bigint,                                     -- who started it (kept if the user goes)
    type                text NOT NULL CHECK (type IN (
                            'campaign', 'pack_purchase', 'topup', 'payment', 'api',
                            'mo_reply', 'refund', 'smpp')),
    amount              numeric(20, 6) NOT NULL,
    currency            char(3) NOT NULL,
    messages            integer NOT NULL DEFAULT 0,
    pack_messages       integer NOT NULL DEFAULT 0,
    description         text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_partner ON transactions (partner_id, created_at DESC, id DESC);
CREATE INDEX transactions_counterparty ON transactions (counterparty_id, created_at DESC)
    WHERE counterparty_id IS NOT NULL;

-- Written with its transactions row by one statement; no foreign key, to keep
-- a batch's hundreds of lines cheap to insert (billing.charging._LEDGER).
CREATE TABLE transaction_details (
    transaction_id  bigint NOT NULL,
    mccmnc          text NOT NULL,
    messages        integer NOT NULL,
    parts           integer NOT NULL,
    pack_parts      integer NOT NULL DEFAULT 0,
    rate            numeric(12, 6),     -- NULL for parts taken from a pack
    total           numeric(20, 6) NOT NULL
);
CREATE INDEX transaction_details_tx ON transaction_details (transaction_id);

-- One row per charged message: what each level of the chain paid, so a
-- refund or a by-delivered settlement can undo exactly that. Arrays run in
-- parallel, one element per payer from the sender up. No foreign keys: the
-- insert path is a COPY of whole batches.
CREATE TABLE charges (
    ref             text PRIMARY KEY,
    partner_id      bigint NOT NULL,
    user_id         bigint,
    type            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    mccmnc          text NOT NULL,
    parts           integer NOT NULL,
    payer_ids       bigint[] NOT NULL,
    amounts         numeric(20, 6)[] NOT NULL,
    rates           numeric(12, 6)[] NOT NULL,
    pack_ids        bigint[] NOT NULL,      -- 0 where the plan paid
    by_delivered    boolean[] NOT NULL,
    transaction_id  bigint,                 -- the sender's ledger row
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'delivered', 'undelivered', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz
);
-- Only the primary key: every other index would cost each charged message.
-- Charges that never get an outcome are closed by the pipeline (it knows
-- its messages in flight) through billing.charging.settle_delivered.
