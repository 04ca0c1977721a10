"""Token buckets and reconnect back-off: pure arithmetic on a ``now`` passed in."""

from __future__ import annotations

import random

__all__ = ["TokenBucket", "backoff_delay"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``.

    Used by the server to answer ESME_RTHROTTLED when a session or an
    account goes over its messages per second.
    """

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None, *, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many; say whether it did."""
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def wait_time(self, now: float, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens will be there (0 when they are now)."""
        self._refill(now)
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def set_rate(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._tokens = min(self._tokens, self.burst)


def backoff_delay(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 60.0,
    rng: random.Random | None = None,
) -> float:
    """Delay before reconnect attempt ``attempt`` (0 for the first retry).

    Exponential (``base * 2**attempt``, at most ``cap``) with "equal jitter":
    half the delay is fixed and half random, so a fleet of clients cut off at
    once does not come back in step, and none retries at once in a tight loop.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    r = (rng or random).random()
    return ceiling / 2 + r * ceiling / 2
