"""Short codes: how they are made and how long a short link is. Pure.

A code is ``CODE_LENGTH`` (8) characters drawn with :mod:`secrets` from
``ALPHABET``: the 62 ASCII letters and digits, all in the GSM 03.38 basic
set, so a short link costs one septet per character in an SMS and never
forces UCS-2. 62**8 ≈ 2.2 × 10**14 codes (47.6 bits): with a million live
codes a random guess finds one with probability 4.5 × 10**-9, so walking the
code space one request at a time finds nothing worth the traffic.

Collisions are left to the database: each code is inserted under a unique
``(domain_id, code)`` key with ``ON CONFLICT DO NOTHING`` and the few that
collide are drawn again (:mod:`shortener.links`).
"""

from __future__ import annotations

import re
import secrets
import string

ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 8
SCHEME = "https"
# What the redirect service accepts as a code in a path: the alphabet, a sane length.
# Anything else is answered "not found" without looking it up.
_CODE = re.compile(r"[A-Za-z0-9]{4,16}")
# A code of the right length and alphabet for previews: any code costs as much.
SAMPLE_CODE = "aB3dE6gH"[:CODE_LENGTH]


def new_code(length: int = CODE_LENGTH) -> str:
    """One code of ``length`` characters from :data:`ALPHABET`, from the OS's CSPRNG."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_codes(count: int, length: int = CODE_LENGTH) -> list[str]:
    """``count`` distinct codes."""
    found: set[str] = set()
    while len(found) < count:
        found.add(new_code(length))
    return list(found)


def is_code(text: str) -> bool:
    """Whether ``text`` could be a code (alphabet and length), before any lookup."""
    return _CODE.fullmatch(text) is not None


def short_url(host: str, code: str) -> str:
    """The link as it is written in a message: ``https://<host>/<code>``."""
    return f"{SCHEME}://{host}/{code}"


def short_link_length(host: str) -> int:
    """Characters the short link takes in a message on ``host`` (for the wizard's counter)."""
    return len(short_url(host, SAMPLE_CODE))
