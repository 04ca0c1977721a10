-- Billing area, part 3: the numbering reference book (E.164 prefix → E.212 MCC/MNC).
--
-- Longest-prefix match happens in memory (billing.refbook.PrefixTable); this
-- table is the durable copy the owner imports and exports. The revision in
-- refbook_state lets each process notice a change with one cheap query.

CREATE TABLE number_prefixes (
    prefix      text PRIMARY KEY CHECK (prefix ~ '^[0-9]{1,15}$'),
    mcc         char(3) NOT NULL CHECK (mcc ~ '^[0-9]{3}$'),
    mnc         text CHECK (mnc ~ '^[0-9]{2,3}$'),      -- NULL: network not known
    country     char(2) NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    network     text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refbook_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO refbook_state DEFAULT VALUES;
