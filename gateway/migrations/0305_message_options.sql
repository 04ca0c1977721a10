-- What the HTTP API accepts beyond the core EDR columns of 0300: Viber content,
-- the Viber→SMS cascade, and a per-partner API throughput limit.

ALTER TABLE messages
    ADD COLUMN traffic_type     text CHECK (traffic_type IN ('promotion', 'transaction')),
    ADD COLUMN fallback_channel text CHECK (fallback_channel IN ('sms')),
    ADD COLUMN fallback_ttl     integer CHECK (fallback_ttl > 0),   -- seconds
    ADD COLUMN image_url        text,
    ADD COLUMN button_url       text,
    ADD COLUMN button_caption   text;

-- Messages per second a partner may submit over the HTTP API; NULL uses the
-- process default (HERALD_API_TPS).
ALTER TABLE partners ADD COLUMN api_tps integer CHECK (api_tps >= 0);
