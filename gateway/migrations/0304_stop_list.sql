-- The stop list: numbers that must not receive messages from a partner's sender ID
-- (opt-outs by MO keyword, or entered by hand). sender '*' blocks every sender
-- ID of the partner. Checked by the pipeline before charging.

CREATE TABLE stop_list (
    partner_id  bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    msisdn      text NOT NULL CHECK (msisdn ~ '^[0-9]{4,15}$'),   -- E.164 digits
    sender      text NOT NULL,
    source      text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'mo', 'import')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- msisdn before sender: the pipeline asks about many numbers of one partner
    PRIMARY KEY (partner_id, msisdn, sender)
);
