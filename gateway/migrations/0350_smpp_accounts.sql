-- SMPP accounts: credentials an end user's systems bind to Herald's SMPP server with.
--
-- system_id is unique across the platform (a bind names nothing else). The
-- password is stored as an argon2id hash. allowed_ips lists the networks a bind
-- may come from; an empty list allows any address. max_binds caps the sessions
-- one account holds at once; tps caps its submits per second (NULL: no limit).

CREATE TABLE smpp_accounts (
    id              bigserial PRIMARY KEY,
    partner_id      bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    user_id         bigint REFERENCES users (id) ON DELETE SET NULL,
    system_id       text NOT NULL UNIQUE CHECK (length(system_id) BETWEEN 1 AND 15),
    password_hash   text NOT NULL,
    allowed_ips     cidr[] NOT NULL DEFAULT '{}',
    max_binds       integer NOT NULL DEFAULT 4 CHECK (max_binds >= 1),
    tps             integer CHECK (tps > 0),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX smpp_accounts_partner ON smpp_accounts (partner_id);

-- deliver_sm waiting for an SMPP client: delivery receipts and MO messages are
-- written here in the transaction that produced them, and removed once the
-- client answered deliver_sm_resp OK. A client that is not bound loses nothing:
-- its rows wait (next_attempt_at) until one of its receivers binds, on any node.
CREATE TABLE smpp_outbox (
    id                  bigserial PRIMARY KEY,
    smpp_account_id     bigint NOT NULL REFERENCES smpp_accounts (id) ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('receipt', 'mo')),
    source_addr         text NOT NULL,
    destination_addr    text NOT NULL,
    esm_class           smallint NOT NULL DEFAULT 0,
    data_coding         smallint NOT NULL DEFAULT 0,
    short_message       bytea NOT NULL,
    receipted_message_id text,        -- SMPP 3.4 §5.3.2.12, receipts only
    message_state       smallint,     -- SMPP 3.4 §5.3.2.35, receipts only
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),  -- also the lease end while claimed
    claimed_by          text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX smpp_outbox_due ON smpp_outbox (smpp_account_id, next_attempt_at);
