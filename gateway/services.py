"""Long-running services beside the HTTP server (SMPP server, queue workers, connectors).

Two kinds of lifecycle:

* :func:`install` adds the message pipeline (and its group-commit writer) to
  the application's ``cleanup_ctx``: it starts with the application, before any
  request is served, and stops after the HTTP server drained its requests, so
  the writer commits what is waiting before the pool closes. Anything running
  an application (``Herald``, test clients) gets it. ``gateway.api.setup``
  calls it; other areas needing ``app[PIPELINE]`` may call it too (it is
  idempotent).
* :func:`build_services` lists the background services of one process, each
  with ``async start()`` and ``async stop()``, in start order; ``Herald``
  starts them after the HTTP server and stops them first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from gateway import apikeys
from gateway.app import DB, REDIS, SETTINGS
from gateway.callbacks import CallbackDispatcher, CallbackJob
from gateway.housekeeping import Housekeeping
from gateway.keys import API_LIMITER, PIPELINE
from gateway.pipeline import Pipeline
from gateway.ratelimit import TpsLimiter

log = logging.getLogger("herald.services")

_INSTALLED = web.AppKey("pipeline_installed", bool)


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    pipeline = Pipeline(app[DB], app[REDIS], app[SETTINGS])
    await pipeline.start()
    app[PIPELINE] = pipeline
    app[API_LIMITER] = TpsLimiter(app[REDIS], prefix="api")
    try:
        yield
    finally:
        await pipeline.stop()


def install(app: web.Application) -> None:
    """Give ``app`` its pipeline (``app[PIPELINE]``) for the application's lifetime."""
    if app.get(_INSTALLED):
        return
    app[_INSTALLED] = True
    app.cleanup_ctx.append(_pipeline_ctx)


def callback_key_resolver(app: web.Application):
    """``key_for`` of the callback dispatcher: callbacks are signed per API key.

    The HMAC key is the SHA-256 of the API key (what Herald stores): the client
    holds the key itself, so it can compute the same digest and check
    ``X-Herald-Signature`` without Herald ever storing a usable secret.
    Messages that came without an API key (SMPP, campaigns) are sent unsigned.
    """

    async def key_for(job: CallbackJob) -> bytes | None:
        if job.api_key_id is None:
            return None
        return await app[DB].fetchval("SELECT key_hash FROM api_keys WHERE id = $1", job.api_key_id)

    return key_for


def signing_key(api_key: str) -> bytes:
    """The callback signing key a client derives from its API key (see :func:`callback_key_resolver`).

    It is exactly the digest Herald stores for the key, so the two cannot drift apart.
    """
    return apikeys.hash_key(api_key)


def build_services(app: web.Application) -> list[Service]:
    """The services this process runs, built on the application's resources."""
    from gateway.smpp_ingress import smpp_services  # SMPP server, vendor connectors, MO

    dispatcher = CallbackDispatcher(app[DB], callback_key_resolver(app),
                                    lease=app[SETTINGS].callback_lease)
    return [dispatcher, Housekeeping(app[DB]), *smpp_services(app)]
