"""Portal sessions in Redis, behind an opaque random cookie.

aiohttp-session's own ``RedisStorage`` works with ``redis.asyncio`` but wants
the client when the app is built, while Herald opens Redis at start-up
(``cleanup_ctx``). This small storage takes the client from the app on each
request, gives sessions an idle timeout refreshed on use, deletes the old
Redis entry when a session is replaced (:func:`rotate`, at sign-in) or
emptied, and sets the cookie HttpOnly and SameSite=Lax, Secure when Herald
sits behind HTTPS.

"Sign out everywhere" is a per-user generation counter: a session remembers
the generation it signed in at and is worthless once the counter moves on.
"""

from __future__ import annotations

import json
import secrets

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp_session import AbstractStorage, Session, get_session, new_session

from gateway.base.app import REDIS

COOKIE_NAME = "herald_session"
IDLE_TIMEOUT = 12 * 3600  # seconds a session lives without a request
_PREFIX = "herald:session:"
_GENERATION = "herald:user-sessions:"


def _key(identity: str) -> str:
    return _PREFIX + identity


class RedisSessionStorage(AbstractStorage):
    """Sessions as JSON under ``herald:session:<id>``; the cookie holds only the id."""

    def __init__(self, *, secure: bool, idle_timeout: int = IDLE_TIMEOUT) -> None:
        # No max_age on the cookie: it ends with the browser; Redis ends it when idle.
        super().__init__(
            cookie_name=COOKIE_NAME, httponly=True, samesite="Lax", secure=secure or None,
        )
        self.idle_timeout = idle_timeout

    async def load_session(self, request: web.Request) -> Session:
        identity = self.load_cookie(request)
        if not identity or len(identity) > 100:
            return Session(None, data=None, new=True)
        client: aioredis.Redis = request.app[REDIS]
        raw = await client.getex(_key(identity), ex=self.idle_timeout)
        if raw is None:
            return Session(None, data=None, new=True)
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        return Session(identity, data=data, new=False)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        client: aioredis.Redis = request.app[REDIS]
        replaced = request.get(_REPLACED)
        if replaced:
            await client.delete(_key(replaced))
        identity = session.identity
        if session.empty:
            if identity:
                await client.delete(_key(identity))
            self.save_cookie(response, "")
            return
        if identity is None:
            identity = secrets.token_urlsafe(32)
            session.set_new_identity(identity)
        await client.set(
            _key(identity), json.dumps(self._get_session_data(session)), ex=self.idle_timeout
        )
        self.save_cookie(response, identity)


_REPLACED = web.RequestKey("herald_replaced_session", str)


async def rotate(request: web.Request) -> Session:
    """A fresh session with a new id replacing the current one (its data dropped).

    Called at sign-in so that a session id planted before authentication is
    worthless after it (session fixation).
    """
    old = await get_session(request)
    if old.identity:
        request[_REPLACED] = old.identity
    session = await new_session(request)
    session.changed()
    return session


async def generation(client: aioredis.Redis, user_id: int) -> int:
    """The user's current session generation (0 until the first "sign out everywhere")."""
    value = await client.get(f"{_GENERATION}{user_id}")
    return int(value) if value else 0


async def bump_generation(client: aioredis.Redis, user_id: int) -> int:
    """End every session of the user; returns the new generation."""
    return int(await client.incr(f"{_GENERATION}{user_id}"))
