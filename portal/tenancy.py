"""Which portal a request is for, and the white-label look it brings.

Portals are billing's aggregate (``accounts.portals``): found from the
request's Host, else the default portal. The portal record carries the look
(name, logo, primary colour, support e-mail) and the access rules (self
sign-up, mandatory 2FA, languages). This module adds what the web layer needs
on top: whether the host matched by name, and the brand colour's shades.
"""

from __future__ import annotations

import re

from accounts.portals import Portal, normalise_host, portal_for_host
from config.errors import Invalid

__all__ = ["Portal", "brand_color", "contrast_text", "has_terms", "portal_for_request", "shade"]

DEFAULT_COLOR = "#2563eb"
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


async def portal_for_request(conn, host: str) -> tuple[Portal, bool]:
    """The portal serving ``host`` and whether it matched by name (False: the default portal).

    Raises ``NotFound`` when no portal matches and none is the default.
    """
    portal = await portal_for_host(conn, host)
    try:
        key = normalise_host(host)
    except Invalid:
        key = ""
    return portal, bool(key) and portal.host.lower() == key


def has_terms(portal: Portal) -> bool:
    """Whether the portal published Terms and Conditions (then sign-up asks for data consent)."""
    return bool(portal.terms_text.strip())


def brand_color(portal: Portal) -> str:
    """The primary colour, or Herald's when the stored value is not #rrggbb."""
    return portal.primary_color if _HEX_COLOR.match(portal.primary_color) else DEFAULT_COLOR


def shade(color: str, factor: float) -> str:
    """``color`` darkened (factor < 1) or lightened towards white (factor > 1)."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    if factor <= 1:
        mixed = [round(c * factor) for c in (red, green, blue)]
    else:
        mixed = [round(c + (255 - c) * (factor - 1)) for c in (red, green, blue)]
    return "#" + "".join(f"{max(0, min(255, c)):02x}" for c in mixed)


def contrast_text(color: str) -> str:
    """Near-black or white, whichever reads better on ``color`` (WCAG relative luminance)."""
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)
    # contrast with white = 1.05 / (L + 0.05); with black = (L + 0.05) / 0.05
    return "#ffffff" if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05 else "#111827"
