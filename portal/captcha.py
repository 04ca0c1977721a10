"""Image CAPTCHA for the sign-up form.

The answer is kept in Redis under a random challenge id that the form carries;
the image is drawn from it on request. Checking takes the answer out of Redis
(GETDEL), so every challenge is good for one try, and it expires unanswered.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets

import redis.asyncio as aioredis
from captcha.image import ImageCaptcha

LENGTH = 5
LIFETIME = 10 * 60  # seconds
# No characters that look alike (0/O, 1/I/L, 5/S, 2/Z, 8/B).
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
_PREFIX = "herald:captcha:"
_image = ImageCaptcha(width=200, height=70)


def _key(challenge: str) -> str:
    return _PREFIX + challenge


async def new_challenge(client: aioredis.Redis) -> str:
    """A new challenge id whose answer is stored in Redis."""
    challenge = secrets.token_urlsafe(16)
    answer = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    await client.set(_key(challenge), answer, ex=LIFETIME)
    return challenge


async def image(client: aioredis.Redis, challenge: str) -> bytes | None:
    """The PNG for a live challenge, or None."""
    if not challenge or len(challenge) > 64:
        return None
    answer = await client.get(_key(challenge))
    if answer is None:
        return None
    text = answer.decode() if isinstance(answer, bytes) else answer
    data = await asyncio.to_thread(_image.generate, text)
    return data.getvalue()


async def check(client: aioredis.Redis, challenge: str, given: str) -> bool:
    """True when ``given`` answers the challenge; the challenge is used up either way."""
    if not challenge or len(challenge) > 64:
        return False
    answer = await client.getdel(_key(challenge))
    if answer is None:
        return False
    expected = answer.decode() if isinstance(answer, bytes) else answer
    return hmac.compare_digest(expected, (given or "").strip().upper())


async def answer_for_tests(client: aioredis.Redis, challenge: str) -> str | None:
    """The stored answer (tests read it; the portal never shows it)."""
    value = await client.get(_key(challenge))
    return value.decode() if isinstance(value, bytes) else value
