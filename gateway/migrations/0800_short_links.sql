-- The URL shortener: short domains, who may use them, short links, their codes and clicks.
--
-- A short link is https://<short domain>/<code>. One link is made per campaign
-- and domain (both channels of a cascade share it); its codes are one shared
-- code, or one code per recipient when the campaign asks for per-recipient
-- links. Clicks are written in batches by the redirect service; each code and
-- link also keeps running counters so that trees and EDR screens need no scan
-- of the click rows.

CREATE TABLE short_domains (
    id          bigserial PRIMARY KEY,
    host        text NOT NULL,                  -- lower-case ASCII (IDNA) host name
    enabled     boolean NOT NULL DEFAULT true,  -- off: not offered, and its links answer 404
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (host = lower(host) AND host <> '')
);
CREATE UNIQUE INDEX short_domains_host ON short_domains (host);

-- Who may shorten with a domain: every user of a portal, of a partner (and of
-- the partners below it), or one user. Exactly one of the three per row.
CREATE TABLE short_domain_grants (
    id          bigserial PRIMARY KEY,
    domain_id   bigint NOT NULL REFERENCES short_domains (id) ON DELETE CASCADE,
    portal_id   bigint REFERENCES portals (id) ON DELETE CASCADE,
    partner_id  bigint REFERENCES partners (id) ON DELETE CASCADE,
    user_id     bigint REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(portal_id, partner_id, user_id) = 1)
);
CREATE UNIQUE INDEX short_domain_grants_portal ON short_domain_grants (domain_id, portal_id)
    WHERE portal_id IS NOT NULL;
CREATE UNIQUE INDEX short_domain_grants_partner ON short_domain_grants (domain_id, partner_id)
    WHERE partner_id IS NOT NULL;
CREATE UNIQUE INDEX short_domain_grants_user ON short_domain_grants (domain_id, user_id)
    WHERE user_id IS NOT NULL;
CREATE INDEX short_domain_grants_by_portal ON short_domain_grants (portal_id) WHERE portal_id IS NOT NULL;
CREATE INDEX short_domain_grants_by_partner ON short_domain_grants (partner_id) WHERE partner_id IS NOT NULL;
CREATE INDEX short_domain_grants_by_user ON short_domain_grants (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE short_links (
    id            bigserial PRIMARY KEY,
    domain_id     bigint NOT NULL REFERENCES short_domains (id),
    partner_id    bigint NOT NULL REFERENCES partners (id),
    user_id       bigint,
    -- campaigns (id): a plain column until the campaigns table exists
    campaign_id   bigint,
    name          text NOT NULL DEFAULT '',     -- the campaign's name when the link was made
    original_url  text NOT NULL,
    per_recipient boolean NOT NULL DEFAULT false,
    clicks        bigint NOT NULL DEFAULT 0,    -- people (bots and previews apart)
    bot_clicks    bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    archived_at   timestamptz
);
CREATE UNIQUE INDEX short_links_campaign ON short_links (campaign_id, domain_id)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX short_links_partner ON short_links (partner_id, domain_id, created_at DESC);
CREATE INDEX short_links_archived ON short_links (archived_at) WHERE archived_at IS NOT NULL;

CREATE TABLE short_codes (
    id             bigserial PRIMARY KEY,
    link_id        bigint NOT NULL REFERENCES short_links (id) ON DELETE CASCADE,
    domain_id      bigint NOT NULL,             -- the link's, for the unique key below
    code           text NOT NULL,
    recipient      text,                        -- the phone number of a per-recipient code
    message_id     uuid,                        -- its message (EDR), once known
    clicks         integer NOT NULL DEFAULT 0,
    bot_clicks     integer NOT NULL DEFAULT 0,
    first_click_at timestamptz,
    last_click_at  timestamptz
);
CREATE UNIQUE INDEX short_codes_code ON short_codes (domain_id, code);
CREATE UNIQUE INDEX short_codes_recipient ON short_codes (link_id, recipient) WHERE recipient IS NOT NULL;
CREATE UNIQUE INDEX short_codes_shared ON short_codes (link_id) WHERE recipient IS NULL;
CREATE INDEX short_codes_message ON short_codes (message_id) WHERE message_id IS NOT NULL;

CREATE TABLE short_clicks (
    id          bigserial PRIMARY KEY,
    link_id     bigint NOT NULL REFERENCES short_links (id) ON DELETE CASCADE,
    code_id     bigint NOT NULL,
    clicked_at  timestamptz NOT NULL,
    bot         boolean NOT NULL,               -- a crawler or link previewer, counted apart
    os          text NOT NULL,
    browser     text NOT NULL,
    device      text NOT NULL,
    referrer    text NOT NULL DEFAULT '',
    country     text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT ''
);
CREATE INDEX short_clicks_link_time ON short_clicks (link_id, clicked_at);
