-- Billing area, part 5: rate plans and message packs, what a partner may buy
-- (offers) and what it holds (its active plan per traffic type, its packs).

CREATE TABLE rate_plans (
    id                  bigserial PRIMARY KEY,
    owner_partner_id    bigint NOT NULL REFERENCES partners (id),   -- who sells it
    name                text NOT NULL,
    traffic             text NOT NULL CHECK (traffic IN ('sms', 'viber_promotion', 'viber_transaction')),
    currency            char(3) NOT NULL,
    billing_mode        text NOT NULL DEFAULT 'submitted' CHECK (billing_mode IN ('submitted', 'delivered')),
    for_resellers       boolean NOT NULL DEFAULT false,   -- a reseller plan: resellers derive theirs from it
    public              boolean NOT NULL DEFAULT false,   -- offered to every partner directly below the owner
    base_plan_id        bigint REFERENCES rate_plans (id),-- the reseller plan this one was derived from
    description         text NOT NULL DEFAULT '',
    archived            boolean NOT NULL DEFAULT false,
    revision            bigint NOT NULL DEFAULT 1,        -- bumped on every rate change; caches compare it
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_partner_id, name)
);

CREATE TABLE plan_rates (
    plan_id     bigint NOT NULL REFERENCES rate_plans (id) ON DELETE CASCADE,
    mcc         char(3) NOT NULL CHECK (mcc ~ '^[0-9]{3}$'),
    mnc         text NOT NULL CHECK (mnc = '*' OR mnc ~ '^[0-9]{2,3}$'),
    price       numeric(12, 6) NOT NULL CHECK (price >= 0),
    PRIMARY KEY (plan_id, mcc, mnc)
);

-- A plan made available to one partner (the admin panel's "assign").
CREATE TABLE plan_offers (
    plan_id     bigint NOT NULL REFERENCES rate_plans (id) ON DELETE CASCADE,
    partner_id  bigint NOT NULL REFERENCES partners (id),
    PRIMARY KEY (plan_id, partner_id)
);

-- The one active plan per partner and traffic type.
CREATE TABLE partner_plans (
    partner_id  bigint NOT NULL REFERENCES partners (id),
    traffic     text NOT NULL CHECK (traffic IN ('sms', 'viber_promotion', 'viber_transaction')),
    plan_id     bigint NOT NULL REFERENCES rate_plans (id),
    since       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, traffic)
);
CREATE INDEX partner_plans_plan ON partner_plans (plan_id);

CREATE TABLE packs (
    id                  bigserial PRIMARY KEY,
    owner_partner_id    bigint NOT NULL REFERENCES partners (id),
    name                text NOT NULL,
    channel             text NOT NULL CHECK (channel IN ('sms', 'viber')),
    countries           text[] NOT NULL DEFAULT '{}',    -- ISO 3166 codes; empty: any destination
    message_count       integer NOT NULL CHECK (message_count > 0),
    price               numeric(20, 6) NOT NULL CHECK (price >= 0),
    currency            char(3) NOT NULL,
    cost_per_message    numeric(12, 6) NOT NULL CHECK (cost_per_message >= 0),
    billing_mode        text NOT NULL DEFAULT 'submitted' CHECK (billing_mode IN ('submitted', 'delivered')),
    available_from      timestamptz,
    available_until     timestamptz,
    validity_days       integer NOT NULL CHECK (validity_days > 0),
    public              boolean NOT NULL DEFAULT false,
    archived            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_partner_id, name)
);

CREATE TABLE pack_offers (
    pack_id     bigint NOT NULL REFERENCES packs (id) ON DELETE CASCADE,
    partner_id  bigint NOT NULL REFERENCES partners (id),
    PRIMARY KEY (pack_id, partner_id)
);

-- A purchased pack. Coverage is frozen at purchase as the list of MCCs its
-- countries had then (empty: any destination), so pricing needs no lookup.
CREATE TABLE pack_subscriptions (
    id                  bigserial PRIMARY KEY,
    partner_id          bigint NOT NULL REFERENCES partners (id),
    pack_id             bigint NOT NULL REFERENCES packs (id),
    channel             text NOT NULL CHECK (channel IN ('sms', 'viber')),
    mccs                text[] NOT NULL DEFAULT '{}',
    total               integer NOT NULL CHECK (total > 0),
    remaining           integer NOT NULL CHECK (remaining >= 0),
    price               numeric(20, 6) NOT NULL,
    cost_per_message    numeric(12, 6) NOT NULL,
    billing_mode        text NOT NULL CHECK (billing_mode IN ('submitted', 'delivered')),
    purchased_at        timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    canceled_at         timestamptz,
    transaction_id      bigint
);
CREATE INDEX pack_subscriptions_live ON pack_subscriptions (partner_id, expires_at)
    WHERE remaining > 0 AND canceled_at IS NULL;
