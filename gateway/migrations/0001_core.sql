-- Portals, the partner tree and users: the root every other table hangs from.

CREATE TABLE portals (
    id              bigserial PRIMARY KEY,
    owner_partner_id bigint,                       -- set once the owner exists (FK below)
    name            text NOT NULL,
    host            text NOT NULL,                 -- host name requests arrive on
    is_default      boolean NOT NULL DEFAULT false,-- serves hosts no portal claims
    logo_url        text NOT NULL DEFAULT '',
    primary_color   text NOT NULL DEFAULT '#2563eb',
    support_email   text NOT NULL DEFAULT '',
    terms_text      text NOT NULL DEFAULT '',
    privacy_text    text NOT NULL DEFAULT '',
    allow_signup    boolean NOT NULL DEFAULT false,
    require_2fa     boolean NOT NULL DEFAULT false,
    languages       text[] NOT NULL DEFAULT ARRAY['en', 'es', 'ru', 'tr'],
    default_language text NOT NULL DEFAULT 'en',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX portals_host_key ON portals (lower(host));
CREATE UNIQUE INDEX portals_one_default ON portals (is_default) WHERE is_default;

CREATE TABLE partners (
    id              bigserial PRIMARY KEY,
    parent_id       bigint REFERENCES partners (id),
    -- ancestors from the root down to and including this partner: scoping a
    -- subtree is "$1 = ANY(path)", served by the GIN index
    path            bigint[] NOT NULL DEFAULT '{}',
    kind            text NOT NULL CHECK (kind IN ('owner', 'reseller', 'client')),
    name            text NOT NULL,
    portal_id       bigint NOT NULL REFERENCES portals (id),
    -- the contract company (legal entity)
    company_name    text NOT NULL DEFAULT '',
    company_address text NOT NULL DEFAULT '',
    company_reg_no  text NOT NULL DEFAULT '',
    company_vat_no  text NOT NULL DEFAULT '',
    company_email   text NOT NULL DEFAULT '',
    currency        char(3) NOT NULL DEFAULT 'EUR',
    balance         numeric(20, 6) NOT NULL DEFAULT 0,
    credit_limit    numeric(20, 6) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    mo_enabled      boolean NOT NULL DEFAULT false,
    allow_signup    boolean NOT NULL DEFAULT false, -- its own clients may self-register
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    supervisor_email text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'owner') = (parent_id IS NULL)),
    -- a debit may never take the balance below the credit limit
    CHECK (balance >= -credit_limit)
);
CREATE INDEX partners_parent ON partners (parent_id);
CREATE INDEX partners_path ON partners USING gin (path);
CREATE UNIQUE INDEX partners_one_owner ON partners ((true)) WHERE kind = 'owner';

ALTER TABLE portals
    ADD CONSTRAINT portals_owner_fk FOREIGN KEY (owner_partner_id) REFERENCES partners (id);

-- Fill path from the parent on insert, so no caller can get it wrong.
CREATE FUNCTION partners_set_path() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.parent_id IS NULL THEN
        NEW.path := ARRAY[NEW.id];
    ELSE
        SELECT path || NEW.id INTO NEW.path FROM partners WHERE id = NEW.parent_id;
        IF NEW.path IS NULL THEN
            RAISE EXCEPTION 'parent partner % does not exist', NEW.parent_id;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER partners_path BEFORE INSERT ON partners
    FOR EACH ROW EXECUTE FUNCTION partners_set_path();

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    partner_id      bigint NOT NULL REFERENCES partners (id),
    portal_id       bigint NOT NULL REFERENCES portals (id),
    email           text NOT NULL,
    password_hash   text NOT NULL,
    first_name      text NOT NULL DEFAULT '',
    last_name       text NOT NULL DEFAULT '',
    role            text NOT NULL CHECK (role IN ('owner_admin', 'reseller_admin', 'user')),
    language        text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'es', 'ru', 'tr')),
    theme           text NOT NULL DEFAULT 'light' CHECK (theme IN ('light', 'dark')),
    totp_secret     text,
    totp_enabled    boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'disabled')),
    email_confirmed_at timestamptz,
    custom_fields   jsonb NOT NULL DEFAULT '{}',
    ui_prefs        jsonb NOT NULL DEFAULT '{}',     -- table column settings and the like
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz
);
CREATE UNIQUE INDEX users_email_per_portal ON users (portal_id, lower(email));
CREATE INDEX users_partner ON users (partner_id);

-- Secrets every Herald process must share (session and token signing keys),
-- generated once at first start unless the operator sets them.
CREATE TABLE app_secrets (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
