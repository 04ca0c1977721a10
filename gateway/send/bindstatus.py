"""Live bind state of vendor connectors, shared across Herald processes through Redis.

Every process binds each vendor and reports what its bind is doing under
``herald:bind:<vendor>:<node>`` with a time to live; the connector refreshes it
while it runs, so a process that died drops out of the picture on its own.
The Admin Panel reads the states of all nodes and shows the best one.
A process waiting for another one's exclusive bind (see
:mod:`gateway.send.connectors`) reports ``standby``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

BOUND = "bound"
CONNECTING = "connecting"
FAILED = "failed"
STANDBY = "standby"  # an exclusive bind that another process holds
_RANK = {BOUND: 0, CONNECTING: 1, STANDBY: 2, FAILED: 3}

NODE = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class BindState:
    vendor_id: int
    node: str
    state: str      # bound / connecting / standby / failed
    reason: str
    since: float    # unix time of the last change


def _key(vendor_id: int, node: str = NODE) -> str:
    return f"herald:bind:{vendor_id}:{node}"


async def publish(redis, vendor_id: int, state: str, reason: str = "", *, ttl: int = 60,
                  since: float | None = None) -> None:
    """Record this process's bind state for ``vendor_id`` for ``ttl`` seconds."""
    value = json.dumps({"state": state, "reason": reason[:200], "since": since or time.time()})
    await redis.set(_key(vendor_id), value, ex=ttl)


async def withdraw(redis, vendor_id: int) -> None:
    """This process no longer binds ``vendor_id`` (connector stopped)."""
    await redis.delete(_key(vendor_id))


async def states(redis, vendor_ids: list[int]) -> dict[int, list[BindState]]:
    """Every live node's state per vendor, best first (bound before connecting before failed)."""
    found: dict[int, list[BindState]] = {vid: [] for vid in vendor_ids}
    for vid in vendor_ids:
        async for raw_key in redis.scan_iter(match=f"herald:bind:{vid}:*", count=100):
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            raw = await redis.get(key)
            if raw is None:
                continue
            data = json.loads(raw)
            node = key.split(":", 3)[3]
            found[vid].append(BindState(vid, node, data["state"], data["reason"], data["since"]))
        found[vid].sort(key=lambda s: (_RANK.get(s.state, 9), s.node))
    return found


def summary(states_of_vendor: list[BindState]) -> tuple[str, str]:
    """(state, detail) to show for one vendor: the best node's state and how many are bound."""
    if not states_of_vendor:
        return "", ""
    bound = sum(1 for s in states_of_vendor if s.state == BOUND)
    best = states_of_vendor[0]
    detail = f"{bound}/{len(states_of_vendor)}" if len(states_of_vendor) > 1 else best.reason
    return best.state, detail
