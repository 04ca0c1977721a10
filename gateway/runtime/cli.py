"""``herald`` command line: serve, migrate, settings, and the simulators (smsc-sim, viber-sim)."""

from __future__ import annotations

import argparse
import os
import sys

import uvloop

from config.settings import Settings, SettingsError, describe, load_settings
from gateway.base import logs
from gateway.base.migrate import MigrationError
from gateway.runtime.main import Herald, prepare_database, serve
from smpp.simulator import cli_command as smsc_sim
from viber.simulator import cli_command as viber_sim


def _settings() -> Settings:
    try:
        return load_settings(os.environ)
    except SettingsError as exc:
        print(f"herald: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(coro) -> None:
    uvloop.run(coro)


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    _run(serve(settings))


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    herald = Herald(settings)
    herald.start_embedded()
    try:
        _run(prepare_database(herald.settings))
    except MigrationError as exc:
        print(f"herald: migration failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        herald.stop_embedded()


def cmd_settings(args: argparse.Namespace) -> None:
    for env, default, doc in describe():
        print(f"{env:28} default {default!r:24} {doc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="herald", description="Herald SMS and Viber platform")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP and SMPP servers").set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations and seed").set_defaults(func=cmd_migrate)
    sub.add_parser("settings", help="list the settings and their variables").set_defaults(
        func=cmd_settings
    )
    for name, (help_text, add_args, func) in simulator_commands().items():
        p = sub.add_parser(name, help=help_text)
        add_args(p)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    args.func(args)


def simulator_commands() -> dict:
    """The carrier and Viber provider simulators' commands: name → (help, add_args, run)."""
    return {"smsc-sim": smsc_sim(), "viber-sim": viber_sim()}


if __name__ == "__main__":
    main()
