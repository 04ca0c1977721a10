-- Viber→SMS cascade (gateway.cascade).
--
-- viber_cascade_due: Viber messages that may fall back, and from when. The
-- status hook of the Viber send workers and status webhook writes a row when a
-- cascade message is sent (due at sent_at + fallback_ttl) or ends undelivered
-- or failed (due now), and removes it when the message is delivered or seen.
-- The cascade job reads only due rows: its work follows the messages pending,
-- not the size of the messages table.
CREATE TABLE viber_cascade_due (
    viber_message_id  uuid PRIMARY KEY,
    due_at            timestamptz NOT NULL
);
CREATE INDEX viber_cascade_due_at ON viber_cascade_due (due_at);

-- viber_cascade: one row per Viber message that fell back to SMS. The primary
-- key is the exactly-once guarantee: a process claims a Viber message by
-- inserting its row (ON CONFLICT DO NOTHING), and only the process whose
-- insert went in submits the SMS. The SMS carries client_ref
-- 'cascade:<viber message id>', so a claim whose process died before it
-- recorded the SMS is settled by finding that message, not by sending another.
CREATE TABLE viber_cascade (
    viber_message_id  uuid PRIMARY KEY,
    partner_id        bigint NOT NULL,
    reason            text NOT NULL CHECK (reason IN ('ttl', 'undelivered', 'failed')),
    state             text NOT NULL DEFAULT 'claimed'
                      CHECK (state IN ('claimed', 'sent', 'refused')),
    sms_message_id    uuid UNIQUE,
    error             text,
    attempts          integer NOT NULL DEFAULT 1,
    claimed_until     timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX viber_cascade_stale ON viber_cascade (claimed_until) WHERE state = 'claimed';
