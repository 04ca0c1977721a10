"""Long-running services beside the HTTP server (SMPP server, queue workers, connectors).

Each service has ``async start()`` and ``async stop()``; ``build_services``
lists them for one process, in start order.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def build_services(app: web.Application) -> list[Service]:
    """The services this process runs, built on the application's resources."""
    return []
