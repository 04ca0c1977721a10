-- Campaign Portal access: one-time e-mail tokens, consents, registration fields.

-- One-time links sent by e-mail (sign-up confirmation, password reset). Only a
-- SHA-256 of the token is kept, so a database leak does not leak live links.
CREATE TABLE email_tokens (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('confirm', 'reset')),
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose) WHERE used_at IS NULL;

-- What a user agreed to at sign-up, and when: evidence for data-protection rules.
CREATE TABLE user_consents (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('terms', 'privacy', 'data_processing')),
    accepted_at timestamptz NOT NULL DEFAULT now(),
    remote_addr text NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, kind)
);

-- Extra sign-up fields a contract company asks its clients for ("Form
-- Customization" in the Admin Panel). Values live in users.custom_fields under
-- the field's key.
CREATE TABLE registration_fields (
    id          bigserial PRIMARY KEY,
    partner_id  bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    key         text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,39}$'),
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 120),
    kind        text NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'number', 'select')),
    required    boolean NOT NULL DEFAULT false,
    options     text[] NOT NULL DEFAULT '{}',       -- the choices of a 'select'
    max_length  integer NOT NULL DEFAULT 200 CHECK (max_length BETWEEN 1 AND 2000),
    position    integer NOT NULL DEFAULT 0,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, key)
);
