"""Herald's URL shortener: short domains, short links in campaigns, redirects, click statistics.

A short link is ``https://<short domain>/<code>``: 8 characters from the 62
letters and digits (:mod:`shortener.codes`). The redirect service
(:mod:`shortener.web`) answers it with a ``302`` to the original URL and
hands the click to a batched writer (:mod:`shortener.writer`); the Campaign
Portal shows the statistics (``portal/pages/shortener.py``) and the system
owner manages the domains (``portal/admin/short_domains.py``).

The hook for campaigns
======================

The campaign code calls these; nothing else is needed to put short links in
messages (all in :mod:`shortener.links`, :mod:`shortener.text`,
:mod:`shortener.codes`, :mod:`shortener.domains`, :mod:`shortener.clicks`)::

    # the wizard: which domains the user may pick, and what the counter counts
    domains.usable_domains(conn, user_id) -> list[ShortDomain]            # enabled, granted to the user
    text.find_link(message_text) -> str | None                            # the link to offer to shorten
    codes.short_link_length(host) -> int                                  # exact characters of the short link
    text.preview_text(message_text, original_url, host) -> str            # the text to count segments on

    # launching: one link per campaign and domain (both channels of a cascade get the same)
    shortened = await links.shorten(
        conn, partner_id=..., domain_id=..., original_url=..., campaign_id=..., name=campaign_name,
        user_id=..., per_recipient=False, recipients=(), expires_at=None)  # -> Shortened
    text.replace_link(message_text, original_url, shortened.for_recipient(phone)) -> str

    # per-recipient links: call shorten() again with each chunk of recipients (same codes on a
    # second call), then record which message each code went out in, once the EDR ids are known
    await links.attach_messages(conn, shortened.link.id, [(phone, message_id), ...])

    # the EDR and campaign screens: who clicked
    await clicks.clicks_by_message(conn, partner_id, message_ids) -> {message_id: RecipientClicks}
    await clicks.clicked_recipients(conn, partner_id, link_id) -> [RecipientClicks]

``shorten`` raises :class:`config.errors.Invalid` with ``field`` set to
``original_url`` (not http/https, no host, a user name in it, one of Herald's
own short domains…) or ``short_domain`` (not granted to that user or partner,
or switched off), and :class:`config.errors.Conflict` when the campaign
already has another URL on that domain. ``short_links.campaign_id`` is a plain
``bigint`` until the campaigns table exists: its foreign key (and a join for
the campaign's name and status in the URL Shortener's tree) come with it.
"""
