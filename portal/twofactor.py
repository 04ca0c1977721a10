"""Two-factor authentication with time-based one-time passwords (RFC 6238).

Codes are six digits over 30-second steps, as authenticator apps expect. A
code is accepted one step early or late (clock drift) and never twice: the
last step used is kept in Redis, so a code seen over someone's shoulder is
worthless once it has been typed.
"""

from __future__ import annotations

import time

import pyotp
import redis.asyncio as aioredis
import segno

STEP = 30
DRIFT_STEPS = 1
_USED = "herald:totp-used:"
_CLAIM_STEP = """
local last = redis.call('GET', KEYS[1])
if last and tonumber(last) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def new_secret() -> str:
    """A random base32 secret (160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """An inline SVG QR code of ``uri`` (dark modules on a white quiet zone)."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111827", light="#ffffff")


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to, within the drift allowed, or None."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    current = int(now) // STEP
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None


async def verify(client: aioredis.Redis, user_id: int, secret: str, code: str) -> bool:
    """True for a valid code not used before by this user."""
    step = matching_step(secret, code)
    if step is None:
        return False
    # Compare and record in one atomic step, so two requests cannot both use a code.
    fresh = await client.eval(_CLAIM_STEP, 1, f"{_USED}{user_id}", step, STEP * (2 * DRIFT_STEPS + 2))
    return bool(fresh)


def format_secret(secret: str) -> str:
    """The secret in groups of four, easier to type into an app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
