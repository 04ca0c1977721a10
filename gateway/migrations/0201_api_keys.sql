-- API keys of the HTTP API (Authorization: Bearer <key>). The key itself is
-- shown once; only its SHA-256 is stored. Removed keys are kept (removed_at)
-- so messages sent with them still name their key.
CREATE TABLE api_keys (
    id            bigserial PRIMARY KEY,
    partner_id    bigint NOT NULL REFERENCES partners (id),
    created_by    bigint REFERENCES users (id) ON DELETE SET NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    callback_url  text NOT NULL DEFAULT '',
    key_hash      bytea NOT NULL UNIQUE,
    key_prefix    text NOT NULL,                     -- first characters, to recognise a key
    ttl           text NOT NULL CHECK (ttl IN ('1d', '7d', '30d', '3m', '1y', 'never')),
    expires_at    timestamptz,                       -- NULL: never expires
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    removed_at    timestamptz,
    CHECK ((ttl = 'never') = (expires_at IS NULL))
);
-- Names are unique per partner among the keys that still exist.
CREATE UNIQUE INDEX api_keys_name_per_partner ON api_keys (partner_id, lower(name))
    WHERE removed_at IS NULL;
CREATE INDEX api_keys_partner_listing ON api_keys (partner_id, created_at DESC, id DESC)
    WHERE removed_at IS NULL;
