"""``herald`` command line: serve, migrate, settings, and the simulators (smsc-sim, viber-sim)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from config.settings import Settings, SettingsError, describe, load_settings
from gateway import logs


def _settings() -> Settings:
    try:
        return load_settings(os.environ)
    except SettingsError as exc:
        print(f"herald: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def cmd_serve(args: argparse.Namespace) -> None:
    from gateway.main import serve

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    _run(serve(settings))


def cmd_migrate(args: argparse.Namespace) -> None:
    from gateway.main import Herald, prepare_database
    from gateway.migrate import MigrationError

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
    extra = _extra_commands()
    for name, (help_text, add_args, func) in extra.items():
        p = sub.add_parser(name, help=help_text)
        add_args(p)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    args.func(args)


def _extra_commands() -> dict:
    """Commands other modules contribute (the carrier and Viber provider simulators)."""
    commands: dict = {}
    try:
        from gateway.simulator import cli_command
    except ModuleNotFoundError as exc:
        if exc.name != "gateway.simulator":
            raise
    else:
        commands["smsc-sim"] = cli_command()
    from viber.simulator import cli_command as viber_sim

    commands["viber-sim"] = viber_sim()
    return commands


if __name__ == "__main__":
    main()
