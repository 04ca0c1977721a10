"""Long-running services beside the HTTP server (SMPP server, queue workers, connectors).

Two kinds of lifecycle:

* :func:`install` adds the message pipeline (and its message writer) to
  the application's ``cleanup_ctx``: it starts with the application, before any
  request is served, and stops after the HTTP server drained its requests, so
  the writer commits what is waiting before the pool closes. Anything running
  an application (``Herald``, test clients) gets it. ``gateway.intake.api.setup``
  calls it; other areas needing ``app[PIPELINE]`` may call it too (it is
  idempotent).
* :func:`build_services` lists the background services of one process, each
  with ``async start()`` and ``async stop()``, in start order; ``Herald``
  starts them after the HTTP server and stops them first.

  It also registers the services that can tell whether they are ready (a
  ``name`` and a ``health()`` answering ``"ok"`` or why not) in ``app[HEALTH]``,
  the registry ``/healthz`` reports (see :mod:`gateway.base.app`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from gateway.accept.keys import API_LIMITER, PIPELINE
from gateway.accept.pipeline import Pipeline
from gateway.base import secretbox
from gateway.base.app import DB, HEALTH, REDIS, SETTINGS
from gateway.base.ratelimit import TpsLimiter
from gateway.intake import apikeys
from gateway.intake.smpp_server import SmppIngress
from gateway.report.callbacks import CallbackDispatcher, CallbackJob
from gateway.report.cascade import CascadeJob
from gateway.report.mo import MoHandler
from gateway.runtime.housekeeping import Housekeeping
from gateway.send.connectors import ConnectorOptions, Connectors
from gateway.send.viber_connector import ViberConnectors, ViberOptions
from shortener.web import SHORTENER, RedirectListener

log = logging.getLogger("herald.services")

_INSTALLED = web.AppKey("pipeline_installed", bool)


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def register_health(app: web.Application, services: list[Service]) -> list[Service]:
    """Put each service's ``health`` under its ``name`` in ``app[HEALTH]``; returns ``services``."""
    for service in services:
        check = getattr(service, "health", None)
        if check is not None:
            app[HEALTH][service.name] = check
    return services


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

    The HMAC key is the API key's own signing secret (:func:`gateway.intake.apikeys.callback_signing_key`),
    kept sealed with the process secret key: the database alone does not give it
    away, unlike the key hash it replaces. A key that has none yet (created before
    migration 0380) is given one now. Messages that came without an API key (SMPP,
    campaigns) are sent unsigned.
    """

    async def key_for(job: CallbackJob) -> bytes | None:
        if job.api_key_id is None:
            return None
        try:
            return await apikeys.callback_signing_key(app[DB], job.api_key_id,
                                                      app[SETTINGS].secret_key)
        except secretbox.Unreadable:
            # The attempt fails and is retried: rotating the key's secret fixes it.
            log.error("event=callback_secret_unreadable api_key=%s hint=secret_key_changed",
                      job.api_key_id)
            raise

    return key_for


def signing_key(signing_secret: str) -> bytes:
    """The HMAC key a receiver uses: the signing secret shown with the key (or on rotation),
    as UTF-8 bytes. The same bytes :func:`callback_key_resolver` signs with."""
    return signing_secret.encode()


def build_services(app: web.Application) -> list[Service]:
    """The services this process runs, built on the application's resources.

    By ``HERALD_ROLE``: ``ingress`` runs the SMPP server and its outbox of
    receipts to SMPP clients (the HTTP API runs in every process); ``egress``
    runs the rest (vendor connectors with their receipt writers and MO,
    Viber, the cascade, HTTP callbacks, housekeeping); ``all`` runs both. The
    processes of the two roles meet in PostgreSQL: the send queue and the SMPP
    outbox, each polled, so a busy egress does not delay the answer to a submit.

    Each service that has a ``health()`` is registered for ``/healthz`` (:func:`register_health`).
    Housekeeping starts last (stops first): it re-applies early receipts through
    the connectors' receipt writer and expires MO part sets with their MO handler.
    """
    settings = app[SETTINGS]
    smpp = smpp_services(app, settings.role)
    short = short_link_services(app)  # every role answers short links, as every role serves HTTP
    if settings.role == "ingress":
        return register_health(app, [*short, *smpp])
    dispatcher = CallbackDispatcher(app[DB], callback_key_resolver(app),
                                    lease=settings.callback_lease)
    connectors = next((s for s in smpp if isinstance(s, Connectors)), None)
    housekeeping = Housekeeping(
        app[DB], mo=connectors.mo if connectors else None,
        receipts=connectors.receipts if connectors else None,
        receipt_horizon=settings.early_receipt_horizon,
        retention_months=settings.edr_retention_months,
    )
    return register_health(app, [dispatcher, *short, *smpp, *viber_services(app), housekeeping])


def short_link_services(app: web.Application) -> list[Service]:
    """The short-link port (:class:`shortener.web.RedirectListener`), unless switched off."""
    if not app[SETTINGS].short_listener or SHORTENER not in app:
        return []
    return [RedirectListener(app)]


def viber_services(app: web.Application) -> list[Service]:
    """The Viber vendors' send workers and the Viber→SMS cascade job."""
    pool, redis, settings = app[DB], app[REDIS], app[SETTINGS]
    viber = ViberConnectors(pool, redis, options=ViberOptions.from_settings(settings))
    pipeline = app.get(PIPELINE)
    if pipeline is not None:
        pipeline.add_listener(viber.notify)
        cascade = CascadeJob(pool, pipeline)
    else:
        cascade = CascadeJob(pool, Pipeline(pool, redis, settings), owns_pipeline=True)
    return [viber, cascade]


class _PipelineService:
    """Starts a pipeline of our own when the application has none (no HTTP API installed)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def start(self) -> None:
        await self.pipeline.start()

    async def stop(self) -> None:
        await self.pipeline.stop()


def smpp_services(app: web.Application, role: str = "all") -> list[Service]:
    """The SMPP server (roles all and ingress), the vendor connectors and the MO handler (all
    and egress) of one process, in start order."""
    pool, redis, settings = app[DB], app[REDIS], app[SETTINGS]
    services: list[Service] = []
    pipeline = app.get(PIPELINE)
    if pipeline is None:
        pipeline = Pipeline(pool, redis, settings)
        services.append(_PipelineService(pipeline))
    ingress = outbox = None
    if role in ("all", "ingress"):
        ingress = SmppIngress(pool, pipeline, host=settings.smpp_host, port=settings.smpp_port,
                              lease=settings.vendor_lease, redis=redis, worker=settings.worker)
        # receipts and MO for clients bound here skip the outbox's polling
        outbox = ingress.outbox
    if role in ("all", "egress"):
        mo = MoHandler(pool, pipeline, notify=outbox.notify if outbox is not None else None)
        options = ConnectorOptions(
            response_timeout=settings.vendor_timeout, lease=settings.vendor_lease,
            reconnect_cap=min(30.0, settings.vendor_lease),
        )
        connectors = Connectors(pool, redis, outbox=outbox, mo=mo, options=options)
        pipeline.add_listener(connectors.notify)
        services.append(connectors)
    if ingress is not None:
        services.append(ingress)
    return services

