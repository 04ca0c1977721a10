"""Typed application slots of the gateway's message path (``app[PIPELINE]`` …).

They sit apart from :mod:`gateway.base.app` (the base application's own slots) so
the base does not import the pipeline; any area that needs the pipeline (the
HTTP API, the SMPP server, the campaign runner) reads it from here::

    from gateway.accept.keys import PIPELINE
    results = await request.app[PIPELINE].submit(batch)

The slots are filled by :func:`gateway.runtime.services.install`.
"""

from __future__ import annotations

from aiohttp import web

from gateway.accept.pipeline import Pipeline
from gateway.base.ratelimit import TpsLimiter

PIPELINE = web.AppKey("pipeline", Pipeline)
API_LIMITER = web.AppKey("api_limiter", TpsLimiter)
