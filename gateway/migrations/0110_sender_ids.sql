-- Billing area, part 2: sender IDs, their approval chain and its events.
--
-- A request travels up the partner tree: pending_partner_id names the partner
-- whose decision is awaited (the requester's parent first). A reseller that
-- approves passes it to its own parent; the system owner's approval makes the
-- sender ID usable. Any partner on the way may decline.

CREATE TABLE sender_ids (
    id                  bigserial PRIMARY KEY,
    partner_id          bigint NOT NULL REFERENCES partners (id),
    channel             text NOT NULL CHECK (channel IN ('sms', 'viber')),
    sender              text NOT NULL,
    status              text NOT NULL DEFAULT 'waiting'
                        CHECK (status IN ('enabled', 'disabled', 'waiting')),
    state               text NOT NULL DEFAULT 'new' CHECK (state IN (
                            'new', 'in_progress', 'confirmed', 'declined', 'canceled',
                            'unsubscribed', 'period_changed')),
    pending_partner_id  bigint REFERENCES partners (id),
    comment             text NOT NULL DEFAULT '',
    custom_fields       jsonb NOT NULL DEFAULT '{}',
    requested_by        bigint REFERENCES users (id),
    valid_from          timestamptz,
    valid_until         timestamptz,            -- NULL: no expiry
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'waiting') = (pending_partner_id IS NOT NULL))
);
-- One live request or sender ID per partner, channel and name (any case).
CREATE UNIQUE INDEX sender_ids_live ON sender_ids (partner_id, channel, lower(sender))
    WHERE state IN ('new', 'in_progress', 'confirmed', 'period_changed');
-- The pipeline's check: is this sender enabled for this partner and channel?
CREATE INDEX sender_ids_usable ON sender_ids (partner_id, channel, sender) WHERE status = 'enabled';
-- "Waiting for my decision" in the admin panel.
CREATE INDEX sender_ids_pending ON sender_ids (pending_partner_id) WHERE pending_partner_id IS NOT NULL;
-- Expiry sweeps.
CREATE INDEX sender_ids_expiry ON sender_ids (valid_until) WHERE status = 'enabled';

-- Supporting documents: the bytes live in the portal's file store; this row
-- names them.
CREATE TABLE sender_id_documents (
    id              bigserial PRIMARY KEY,
    sender_id_id    bigint NOT NULL REFERENCES sender_ids (id) ON DELETE CASCADE,
    file_name       text NOT NULL,
    content_type    text NOT NULL DEFAULT 'application/octet-stream',
    size_bytes      bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    storage_key     text NOT NULL,
    uploaded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sender_id_documents_sid ON sender_id_documents (sender_id_id);

-- Every step, in order: the Sender IDs / Events screen of the admin panel.
CREATE TABLE sender_id_events (
    id                  bigserial PRIMARY KEY,
    sender_id_id        bigint NOT NULL REFERENCES sender_ids (id) ON DELETE CASCADE,
    at                  timestamptz NOT NULL DEFAULT now(),
    action              text NOT NULL CHECK (action IN (
                            'requested', 'approved', 'passed_on', 'declined', 'canceled',
                            'unsubscribed', 'period_changed', 'expired')),
    actor_partner_id    bigint REFERENCES partners (id),
    actor_user_id       bigint REFERENCES users (id),
    state               text NOT NULL,      -- the request state after the step
    comment             text NOT NULL DEFAULT ''
);
CREATE INDEX sender_id_events_sid ON sender_id_events (sender_id_id, id);
