-- Billing area, part 4: vendors (carriers over SMPP, Viber providers over HTTP),
-- their products and the rates inside each product.
--
-- A rate is for one MCC/MNC, or for a whole country with mnc '*'.

CREATE TABLE vendors (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    channel         text NOT NULL CHECK (channel IN ('sms', 'viber')),
    protocol        text NOT NULL CHECK (protocol IN ('smpp', 'http')),
    smpp_host       text,
    smpp_port       integer CHECK (smpp_port BETWEEN 1 AND 65535),
    system_id       text,
    password        text,           -- needed in clear to bind; the admin panel never shows it
    system_type     text NOT NULL DEFAULT '',
    bind_type       text NOT NULL DEFAULT 'transceiver'
                    CHECK (bind_type IN ('transceiver', 'transmitter', 'receiver')),
    tps             integer NOT NULL DEFAULT 10 CHECK (tps > 0),
    window_size     integer NOT NULL DEFAULT 10 CHECK (window_size > 0),
    http_base_url   text,
    http_token      text,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (protocol <> 'smpp' OR (smpp_host IS NOT NULL AND smpp_port IS NOT NULL AND system_id IS NOT NULL)),
    CHECK (protocol <> 'http' OR http_base_url IS NOT NULL)
);

CREATE TABLE vendor_products (
    id          bigserial PRIMARY KEY,
    vendor_id   bigint NOT NULL REFERENCES vendors (id) ON DELETE CASCADE,
    name        text NOT NULL,
    currency    char(3) NOT NULL,
    traffic     text NOT NULL CHECK (traffic IN ('sms', 'viber_promotion', 'viber_transaction')),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vendor_id, name)
);

CREATE TABLE vendor_rates (
    product_id  bigint NOT NULL REFERENCES vendor_products (id) ON DELETE CASCADE,
    mcc         char(3) NOT NULL CHECK (mcc ~ '^[0-9]{3}$'),
    mnc         text NOT NULL CHECK (mnc = '*' OR mnc ~ '^[0-9]{2,3}$'),
    price       numeric(12, 6) NOT NULL CHECK (price >= 0),
    PRIMARY KEY (product_id, mcc, mnc)
);
CREATE INDEX vendor_rates_network ON vendor_rates (mcc, mnc);
