"""Typed, frozen settings read once from the environment and an optional TOML file.

Every setting has one environment variable. A TOML file named by ``HERALD_CONFIG``
may supply the same keys (lower case, without the ``HERALD_`` prefix); the
environment wins over the file. A bad value stops start-up with one line that
names the variable, the value and what was expected.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting has a value Herald cannot use."""


def _str(value: str) -> str:
    return value


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"an integer from {lo} to {hi}") from None
        if not lo <= number <= hi:
            raise ValueError(f"an integer from {lo} to {hi}")
        return number

    return parse


def _seconds(lo: int, hi: int) -> Callable[[str], float]:
    """Whole seconds from ``lo`` to ``hi``, as a float for the timers that use them."""
    whole = _int_range(lo, hi)
    return lambda value: float(whole(value))


def _port(value: str) -> int:
    return _int_range(0, 65535)(value)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("one of true/false/1/0/yes/no/on/off")


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value == "":
            return ""
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(f"a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return value.lower()

    return parse


# What one process runs (Settings.role); "all" is everything, as a single process needs.
ROLES = ("all", "ingress", "egress")


def _roles(value: str) -> tuple[str, ...]:
    roles = tuple(r.strip().lower() for r in value.split(",") if r.strip())
    if any(r not in ROLES for r in roles):
        raise ValueError(f"a comma-separated list of {', '.join(ROLES)}")
    return roles


def _setting(env: str, parse: Callable[[str], Any], default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything Herald can be told at start-up. Build with :func:`load_settings`."""

    http_host: str = _setting("HERALD_HTTP_HOST", _str, "127.0.0.1", "address of the HTTP server")
    http_port: int = _setting("HERALD_HTTP_PORT", _port, 8080, "port of the HTTP server")
    smpp_host: str = _setting("HERALD_SMPP_HOST", _str, "127.0.0.1", "address of the SMPP server")
    smpp_port: int = _setting("HERALD_SMPP_PORT", _port, 2775, "port of the SMPP server")
    workers: int = _setting(
        "HERALD_WORKERS", _int_range(1, 64), 1,
        "processes serving HTTP and SMPP on the same ports (one per CPU core uses them all)",
    )
    worker: int = _setting(
        "HERALD_WORKER", _int_range(0, 64), 0,
        "set by the parent process for each of its workers (1..N); leave it unset",
    )
    role: str = _setting(
        "HERALD_ROLE", _choice(*ROLES), "all",
        "what this process runs: all; ingress (SMPP server, receipts to SMPP clients, HTTP API);"
        " egress (vendor connectors, receipts and MO from vendors, callbacks, housekeeping)",
    )
    worker_roles: tuple[str, ...] = _setting(
        "HERALD_WORKER_ROLES", _roles, (),
        "with HERALD_WORKERS: the role of each worker, comma-separated (e.g. ingress,egress),"
        " so that a busy egress does not slow the answers to submits; empty: all for each",
    )
    database_url: str = _setting(
        "DATABASE_URL", _url("postgres", "postgresql"), "",
        "PostgreSQL to use; empty starts the embedded one under the var directory",
    )
    redis_url: str = _setting(
        "REDIS_URL", _url("redis", "rediss", "unix"), "",
        "Redis to use; empty starts the embedded one under the var directory",
    )
    var_dir: Path = _setting("HERALD_VAR_DIR", Path, Path("var"), "where embedded data lives")
    db_pool_size: int = _setting("HERALD_DB_POOL_SIZE", _int_range(2, 500), 10, "PostgreSQL pool size")
    admin_email: str = _setting(
        "HERALD_ADMIN_EMAIL", _str, "admin@herald.local", "e-mail of the first system owner admin"
    )
    admin_password: str = _setting(
        "HERALD_ADMIN_PASSWORD", _str, "",
        "password of the first admin; empty generates one, printed once",
    )
    secret_key: str = _setting(
        "HERALD_SECRET_KEY", _str, "",
        "signs sessions and tokens, seals callback signing secrets; empty generates one,"
        " kept in the database (set it here to keep it out of database copies)",
    )
    public_url: str = _setting(
        "HERALD_PUBLIC_URL", _url("http", "https"), "",
        "base URL used in e-mail links; empty means http://HTTP_HOST:HTTP_PORT",
    )
    log_level: str = _setting(
        "HERALD_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info", "log level"
    )
    log_format: str = _setting("HERALD_LOG_FORMAT", _choice("json", "text"), "text", "log line format")
    smtp_host: str = _setting("HERALD_SMTP_HOST", _str, "", "SMTP server; empty logs mail instead")
    smtp_port: int = _setting("HERALD_SMTP_PORT", _port, 25, "SMTP port")
    smtp_user: str = _setting("HERALD_SMTP_USER", _str, "", "SMTP user")
    smtp_password: str = _setting("HERALD_SMTP_PASSWORD", _str, "", "SMTP password")
    smtp_tls: bool = _setting("HERALD_SMTP_TLS", _bool, False, "use STARTTLS")
    mail_from: str = _setting("HERALD_MAIL_FROM", _str, "herald@localhost", "From: of Herald's mail")
    embedded_pg_fast: bool = _setting(
        "HERALD_EMBEDDED_PG_FAST", _bool, False,
        "run the embedded PostgreSQL without fsync (tests and demos only)",
    )
    shutdown_timeout: float = _setting(
        "HERALD_SHUTDOWN_TIMEOUT", _seconds(1, 120), 5.0,
        "seconds to drain connections on shutdown",
    )
    api_tps: int = _setting(
        "HERALD_API_TPS", _int_range(0, 10_000_000), 1000,
        "messages per second one partner may submit over the HTTP API (0: no limit);"
        " a partner's own api_tps overrides it",
    )
    secure_cookies: bool = _setting(
        "HERALD_SECURE_COOKIES", _bool, False, "mark session cookies Secure (behind HTTPS)"
    )
    vendor_lease: float = _setting(
        "HERALD_VENDOR_LEASE", _seconds(1, 3600), 60.0,
        "seconds a sender holds a claimed queue row (or SMPP outbox row) before another"
        " process may take it; after a crash, in-flight messages wait this long",
    )
    vendor_timeout: float = _setting(
        "HERALD_VENDOR_TIMEOUT", _seconds(1, 600), 10.0,
        "seconds to wait for a vendor's submit_sm_resp before the outcome counts as unknown",
    )
    callback_lease: float = _setting(
        "HERALD_CALLBACK_LEASE", _seconds(1, 3600), 60.0,
        "seconds a process holds a claimed HTTP callback before another may send it;"
        " after a crash, callbacks in flight wait this long",
    )
    early_receipt_horizon: float = _setting(
        "HERALD_EARLY_RECEIPT_HORIZON", _seconds(60, 30 * 86400), 86400.0,
        "seconds a delivery receipt that arrived before its message's vendor id was recorded"
        " is kept and applied again; older ones are dropped with a log line",
    )
    viber_fallback_ttl: int = _setting(
        "HERALD_VIBER_FALLBACK_TTL", _int_range(1, 14 * 86400), 3600,
        "seconds a Viber→SMS cascade message sent without fallbackTtl waits for its Viber"
        " delivery before the SMS goes",
    )
    viber_timeout: float = _setting(
        "HERALD_VIBER_TIMEOUT", _seconds(1, 600), 10.0,
        "seconds to wait for a Viber provider's answer to a send; then it is tried again"
        " (a duplicate is possible, a loss is not)",
    )
    viber_max_attempts: int = _setting(
        "HERALD_VIBER_MAX_ATTEMPTS", _int_range(1, 100), 5,
        "tries of one message at one Viber provider (throttled, timed out, 5xx) before the"
        " next vendor of its route is tried, or the message fails and is refunded",
    )
    viber_backoff_cap: float = _setting(
        "HERALD_VIBER_BACKOFF_CAP", _seconds(1, 86400), 300.0,
        "longest wait in seconds between two tries of a message at a Viber provider"
        " (exponential backoff with jitter, from 1 second; a Retry-After is honoured as given)",
    )
    viber_refresh: float = _setting(
        "HERALD_VIBER_REFRESH", _seconds(1, 3600), 10.0,
        "seconds between two reads of the Viber vendors: an added, changed or disabled"
        " vendor takes effect within this",
    )
    viber_cascade_poll: float = _setting(
        "HERALD_VIBER_CASCADE_POLL", _seconds(1, 3600), 5.0,
        "seconds between two looks for Viber→SMS cascade messages that fell due: the SMS"
        " goes at most this long after the fallback TTL ran out",
    )
    edr_retention_months: int = _setting(
        "HERALD_EDR_RETENTION_MONTHS", _int_range(0, 1200), 13,
        "months of messages (EDRs) kept: the monthly partitions older than this many months"
        " before the current one are dropped whole (0 keeps everything); dashboard totals stay",
    )

    short_listener: bool = _setting(
        "HERALD_SHORT_LISTENER", _bool, False,
        "also answer short links on a port of their own (HERALD_SHORT_HOST/PORT); the HTTP port"
        " answers them either way, but the own port skips the portal's machinery and costs"
        " about half the CPU per redirect",
    )
    short_host: str = _setting("HERALD_SHORT_HOST", _str, "127.0.0.1", "address of the short-link listener")
    short_port: int = _setting("HERALD_SHORT_PORT", _port, 8081, "port of the short-link listener")
    short_country_header: str = _setting(
        "HERALD_SHORT_COUNTRY_HEADER", _str, "",
        "request header holding the visitor's two-letter country, set by the proxy in front"
        " (e.g. CF-IPCountry); empty: clicks carry no country",
    )

    @property
    def base_url(self) -> str:
        """The URL users reach Herald at, for links in mail."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (tests and embedding)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, description) for each setting, for docs and ``herald settings``."""
    return [(f.metadata["env"], _as_env(f.default), f.metadata["doc"]) for f in fields(Settings)]


def _as_env(value: Any) -> str:
    """A default as it would be written in the environment (a list: comma-separated)."""
    return ",".join(value) if isinstance(value, tuple) else str(value)


def load_settings(env: Mapping[str, str], *, toml_path: str | None = None) -> Settings:
    """Build settings from ``env`` (usually ``os.environ``) and an optional TOML file."""
    file_values: dict[str, Any] = {}
    path = toml_path or env.get("HERALD_CONFIG", "")
    if path:
        try:
            with open(path, "rb") as fh:
                file_values = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"HERALD_CONFIG={path!r}: cannot read the file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"HERALD_CONFIG={path!r}: not valid TOML ({exc})") from None

    values: dict[str, Any] = {}
    for f in fields(Settings):
        env_name: str = f.metadata["env"]
        key = env_name.lower().removeprefix("herald_")
        if env_name in env:
            raw: Any = env[env_name]
            source = env_name
        elif key in file_values:
            raw = file_values[key]
            source = f"{key} in {path}"
        else:
            continue
        text = str(raw).lower() if isinstance(raw, bool) else str(raw)
        try:
            values[f.name] = f.metadata["parse"](text)
        except ValueError as exc:
            raise SettingsError(f"{source}={text!r}: expected {exc}") from None
    unknown = set(file_values) - {
        f.metadata["env"].lower().removeprefix("herald_") for f in fields(Settings)
    }
    if unknown:
        raise SettingsError(f"HERALD_CONFIG={path!r}: unknown keys {', '.join(sorted(unknown))}")
    settings = Settings(**values)
    roles = settings.worker_roles
    if roles and (len(roles) != settings.workers
                  or not {"ingress", "all"} & set(roles) or not {"egress", "all"} & set(roles)):
        raise SettingsError(
            f"HERALD_WORKER_ROLES={','.join(roles)!r}: expected one role per worker"
            f" (HERALD_WORKERS={settings.workers}), with some worker taking ingress and some egress")
    return settings
