-- Routing: which vendors carry a channel's traffic to a destination, in failover order.
--
-- A route matches by number prefix (longest wins), by network (MCC+MNC), by
-- country (MCC alone), or by nothing (the channel's default route). The most
-- specific level that matches gives the first vendors, ordered by priority
-- (lower first); less specific levels follow as further fallbacks
-- (gateway/routing.py holds the rule and its tests).

CREATE TABLE routes (
    id          bigserial PRIMARY KEY,
    channel     text NOT NULL CHECK (channel IN ('sms', 'viber')),
    mccmnc      text CHECK (mccmnc ~ '^[0-9]{3}([0-9]{2,3})?$'),  -- "250" country, "25001" network
    prefix      text CHECK (prefix ~ '^[0-9]{1,15}$'),             -- E.164 digits
    vendor_id   bigint NOT NULL REFERENCES vendors (id) ON DELETE CASCADE,
    priority    integer NOT NULL DEFAULT 100,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (mccmnc IS NULL OR prefix IS NULL)   -- both NULL: the default route
);
-- One vendor appears once per match (a second row would only repeat it).
CREATE UNIQUE INDEX routes_unique ON routes
    (channel, coalesce(mccmnc, ''), coalesce(prefix, ''), vendor_id);

-- Bumped by any change, so each process reloads its in-memory table cheaply.
CREATE TABLE routing_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision    bigint NOT NULL DEFAULT 0
);
INSERT INTO routing_state DEFAULT VALUES;

CREATE FUNCTION routing_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE routing_state SET revision = revision + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER routes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON routes
    FOR EACH STATEMENT EXECUTE FUNCTION routing_bump();
-- A vendor switched off or on changes which routes are usable.
CREATE TRIGGER vendors_changed_routing AFTER UPDATE OF enabled, channel OR DELETE ON vendors
    FOR EACH STATEMENT EXECUTE FUNCTION routing_bump();
