-- Messages: one row per message Herald accepted (the EDR, "event detail record").
--
-- The id is the transaction id returned to clients. Herald generates it as a
-- time-ordered UUID (version 7) so new rows land at the right edge of the
-- primary-key index, which keeps bulk inserts cheap on a large table.
--
-- Not partitioned (yet): lookups by id and by vendor message key have no time
-- bound, and a partitioned table would need created_at in every unique key and
-- would probe each partition for them. Retention can move to monthly
-- partitions later; the keyset queries below already carry created_at.
--
-- Referenced tables owned by other areas (users, API keys, SMPP accounts,
-- vendors, campaigns) are plain bigint columns without foreign keys: an EDR
-- outlives the objects it mentions, and the insert path stays free of extra
-- checks. partner_id is the one foreign key: every message belongs to a partner.

CREATE TABLE messages (
    id                  uuid PRIMARY KEY,
    partner_id          bigint NOT NULL REFERENCES partners (id),
    user_id             bigint,
    api_key_id          bigint,
    smpp_account_id     bigint,
    smpp_session        text,          -- the bind a deliver_sm must go back through
    origin              text NOT NULL CHECK (origin IN ('api', 'smpp', 'campaign')),
    channel             text NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'viber')),
    sender              text NOT NULL,
    destination         text NOT NULL,
    mccmnc              text,
    text                text NOT NULL DEFAULT '',
    parts               smallint NOT NULL DEFAULT 1 CHECK (parts >= 1),
    encoding            text NOT NULL DEFAULT 'gsm7',
    data_coding         smallint NOT NULL DEFAULT 0,
    flash               boolean NOT NULL DEFAULT false,
    accept_mo           boolean NOT NULL DEFAULT false,
    cost                numeric(20, 6) NOT NULL DEFAULT 0,
    currency            char(3),
    charge_ref          text,          -- what billing charged (pack or ledger entry), for refunds
    label               text NOT NULL DEFAULT '',
    campaign_id         bigint,
    client_ref          text,          -- the sender's own reference, if it gave one
    status              text NOT NULL DEFAULT 'PREPARED' CHECK (status IN (
                            'PREPARED', 'BILLED', 'SENT', 'DELIVERED', 'UNDELIVERED',
                            'FAILED', 'SEEN')),
    vendor_id           bigint,
    vendor_message_id   text,          -- as the vendor wrote it in submit_sm_resp
    vendor_message_key  text,          -- its normal form (smpp.receipts.normalise_message_id)
    vendor_match_keys   text[],        -- '<vendor id><key>' per smpp.receipts.message_id_keys
    error_code          text,
    error_text          text,
    registered_delivery smallint NOT NULL DEFAULT 0,  -- SMPP 3.4 §5.2.17 bit field
    callback_url        text,          -- snapshot taken at submission
    valid_until         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    billed_at           timestamptz,
    sent_at             timestamptz,
    done_at             timestamptz,   -- reached DELIVERED, UNDELIVERED or FAILED
    seen_at             timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Delivery receipts quote the vendor's id, not always in the form it was given
-- (hex answered, decimal reported...): a receipt matches a message when their
-- key sets intersect, each key prefixed with the vendor id ("7#26", "7=ab-1").
-- fastupdate off: receipts look up rows updated moments before, and with the
-- pending list on every lookup scanned all recent entries (3 ms each, measured).
CREATE INDEX messages_vendor_keys ON messages USING gin (vendor_match_keys) WITH (fastupdate = off)
    WHERE vendor_match_keys IS NOT NULL;  -- unsent rows stay out of the index
-- Statistics screen: a partner's newest first, keyset on (created_at, id).
CREATE INDEX messages_partner_created ON messages (partner_id, created_at DESC, id DESC);
-- Campaign progress and campaign EDR pages.
CREATE INDEX messages_campaign ON messages (campaign_id, created_at DESC, id DESC)
    WHERE campaign_id IS NOT NULL;
-- Scans for messages still in flight (expiry sweeps, stuck-message reports):
-- partial, so the index holds only the small unfinished part of the table.
CREATE INDEX messages_in_flight ON messages (status, created_at)
    WHERE status IN ('PREPARED', 'BILLED', 'SENT');
