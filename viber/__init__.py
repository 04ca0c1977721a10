"""The Viber provider client: Herald's side of a Viber business-messaging provider's HTTP API.

This package knows nothing of Herald's database. :mod:`viber.provider` holds
pure functions (message fields → request JSON, provider answers and status
reports → plain values); :mod:`viber.client` is a thin aiohttp client over
them; :mod:`viber.simulator` is a provider that speaks the same contract, for
tests and demos (``herald viber-sim``).

The provider HTTP contract (Herald defines it; a real provider is reached
through an adapter that speaks it)
----------------------------------------------------------------------------

Sending — ``POST {http_base_url}/messages`` with ``Authorization: Bearer {http_token}``
and a JSON body::

    {"sender": "Herald", "phone": "79161234567", "text": "Hello",
     "traffic_type": "transaction" | "promotion",
     "image_url": "https://…",                              # optional
     "button": {"url": "https://…", "caption": "Open"},     # optional
     "ttl": 3600,                                           # optional, seconds
     "reference": "<Herald message id>"}                    # optional, for the provider's logs

Answers:

* 200, 201 or 202 with ``{"message_id": "…"}`` — accepted;
* 429 (optionally ``Retry-After: <seconds>``) — throttled: try again later;
* 5xx, a timeout, a dropped connection — temporary: try again later;
* any other 4xx, ``{"error": "…", "code": "…"}`` optional — permanent: this
  provider will not take the message (Herald fails over to the next vendor of
  the route, or fails and refunds the message).

Status reports — the provider POSTs each one to Herald at
``POST /api/viber/status/{vendor_id}`` with the same ``Authorization: Bearer {http_token}``
(under ``/api/`` with the JSON API: machine-to-machine, outside the portal's
sessions and CSRF checks)::

    {"message_id": "…", "status": "delivered" | "seen" | "undelivered" | "expired" | "failed",
     "timestamp": "2026-12-03T08:00:00+00:00" (or unix seconds), "error": "…" (optional)}

Herald answers 200 ``{"result": "applied" | "ignored" | "kept"}`` once the
report is stored (a report for a message Herald does not know yet is kept and
applied when it is), 401 on a wrong token, 400 on a malformed body. The
provider retries anything else.
"""
