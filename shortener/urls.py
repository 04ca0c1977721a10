"""Original URLs: what may be shortened, in the form the redirect will send. Pure.

An original URL must be ``http`` or ``https`` with a host. ``javascript:``,
``data:`` and every other scheme are refused, as are links with a user name
or password (``https://bank.example@evil.example/`` reads as the bank to a
person) and links to one of Herald's own short domains, which would send a
click round in a loop. The accepted URL is returned normalised: scheme and
host in lower case, the host in its ASCII (IDNA) form, and characters that may
not appear in a ``Location`` header percent-encoded; what was already encoded
stays as it was.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from urllib.parse import quote, urlsplit, urlunsplit

import idna

from config.errors import Invalid

MAX_LENGTH = 2048
SCHEMES = ("http", "https")
FIELD = "original_url"
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# RFC 3986 reserved and unreserved characters, and % for escapes already made.
_SAFE = "!#$&'()*+,/:;=?@[]~-._%"


def ascii_host(host: str) -> str:
    """``host`` in lower case ASCII (IDNA 2008, UTS 46), without a trailing dot.

    Raises :class:`ValueError` when it is not a host name or an IP address.
    """
    host = host.strip().rstrip(".").lower()
    if not host:
        raise ValueError("empty host")
    if host.startswith("[") and host.endswith("]"):
        ipaddress.IPv6Address(host[1:-1])
        return host
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(str(exc)) from None
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise ValueError("not a host name")
    return host


def validate_original_url(url: str, short_hosts: Collection[str] = ()) -> str:
    """The URL to redirect to, normalised; :class:`Invalid` (field ``original_url``) when refused.

    ``short_hosts`` are Herald's short domains (ASCII, lower case): a link to one
    of them is refused.
    """
    url = (url or "").strip()
    if not url:
        raise Invalid("Enter the link to shorten.", field=FIELD)
    if len(url) > MAX_LENGTH:
        raise Invalid("The link is too long: at most 2048 characters.", field=FIELD)
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise Invalid("The link cannot contain spaces or control characters.", field=FIELD)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Invalid("This is not a valid web address.", field=FIELD) from None
    scheme = parts.scheme.lower()
    if not scheme or "." in scheme:  # "example.com/page", "example.com:8080/page"
        raise Invalid("Start the link with http:// or https://.", field=FIELD)
    if scheme not in SCHEMES:  # javascript:, data:, ftp:, …
        raise Invalid("Only http:// and https:// links can be shortened.", field=FIELD)
    if "\\" in url:
        raise Invalid("This is not a valid web address.", field=FIELD)
    if parts.username is not None or parts.password is not None:
        raise Invalid("Links with a user name or password cannot be shortened.", field=FIELD)
    if not parts.hostname:
        raise Invalid("The link needs a host name, such as https://example.com/.", field=FIELD)
    try:
        host = ascii_host(parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]")
    except ValueError:
        raise Invalid("The host name of this link is not valid.", field=FIELD) from None
    if host in short_hosts:
        raise Invalid("This is already a short link; shorten the address it leads to instead.",
                      field=FIELD)
    netloc = host if port is None else f"{host}:{port}"
    path = quote(parts.path, safe=_SAFE) or "/"
    return urlunsplit((scheme, netloc, path, quote(parts.query, safe=_SAFE),
                       quote(parts.fragment, safe=_SAFE)))
