"""A thin aiohttp client for the provider contract (see :mod:`viber`).
"""

from __future__ import annotations

import aiohttp

from viber.provider import Temporary, ViberMessage, build_request, parse_send_answer


class ViberClient:
    """Sends messages to one provider account. Share one ``session`` between clients
    (its connection pool); without one, the client makes and owns its own."""

    def __init__(
        self, base_url: str, token: str, *, session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/messages"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, message: ViberMessage) -> str:
        """The provider's message id; raises :class:`viber.provider.ProviderError` subclasses."""
        body = build_request(message)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(self.url, json=body, headers=self._headers,
                                          timeout=self._timeout) as resp:
                data = await resp.read()
                return parse_send_answer(resp.status, data, resp.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            # No answer: the provider may have taken it; a retry risks a duplicate, not a loss.
            raise Temporary(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
