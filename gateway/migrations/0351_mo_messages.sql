-- Incoming messages (MO) from vendors, after reassembly, and the partners'
-- reply templates (spec §7.3.2, matched by gateway/keywords.py).

CREATE TABLE mo_messages (
    id              uuid PRIMARY KEY,
    vendor_id       bigint,
    partner_id      bigint REFERENCES partners (id) ON DELETE SET NULL,  -- NULL: nobody owns it
    mt_message_id   uuid,           -- the MT the ownership rule matched
    source          text NOT NULL,  -- the subscriber's number
    destination     text NOT NULL,  -- the sender ID / virtual number it was sent to
    text            text NOT NULL,
    parts           smallint NOT NULL DEFAULT 1,
    template_id     bigint,
    action          text,           -- 'subscribe' | 'unsubscribe' | NULL
    reply_message_id uuid,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mo_messages_partner ON mo_messages (partner_id, received_at DESC);

-- The ownership rule looks up the newest MT to a number from a sender.
CREATE INDEX messages_destination_sender ON messages (destination, sender, created_at DESC);

CREATE TABLE reply_templates (
    id              bigserial PRIMARY KEY,
    partner_id      bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    keywords        text NOT NULL,
    reply_text      text,
    priority        integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    channel         text NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'viber')),
    action          text NOT NULL DEFAULT 'none' CHECK (action IN ('none', 'subscribe', 'unsubscribe')),
    subscribe_group_id   bigint,
    unsubscribe_group_id bigint,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reply_templates_partner ON reply_templates (partner_id) WHERE enabled;
