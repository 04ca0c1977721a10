"""The real ``herald serve`` process on embedded servers: start, crash, restart, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from gateway.base.embedded import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def var_dir():
    """A folder of its own: pytest prunes old tmp_path roots when other sessions start."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="herald-proc-"))
    yield root / "var"
    shutil.rmtree(root, ignore_errors=True)


def _server_processes(var_dir: Path) -> list[psutil.Process]:
    """Embedded postgres / redis processes whose data lives under ``var_dir``."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "cwd"]):
        try:
            name = proc.info["name"] or ""
            cmd = " ".join(proc.info["cmdline"] or [])
            if name == "postgres" and str(var_dir) in cmd:
                found.append(proc)
            elif name.startswith("redis-server") and str(var_dir) in (proc.info["cwd"] or ""):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _postmaster(var_dir: Path) -> int | None:
    pid_file = var_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


class Serve:
    def __init__(self, var_dir: Path, **extra: str) -> None:
        self.var_dir = var_dir
        self.http_port = free_port()
        self.smpp_port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            HERALD_VAR_DIR=str(var_dir), HERALD_HTTP_PORT=str(self.http_port),
            HERALD_SMPP_PORT=str(self.smpp_port), HERALD_ADMIN_PASSWORD="first-admin-pw",
            HERALD_EMBEDDED_PG_FAST="1", **extra,
        )
        self.log = open(var_dir.parent / f"serve-{self.http_port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.runtime.cli", "serve"], env=env,
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def health(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"herald exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2) as r:
                    return {"http": r.status, **json.loads(r.read())}
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"no /healthz in time: {self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> float:
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        self.log.close()
        return time.monotonic() - started


def test_serve_survives_sigkill_and_stops_clean(var_dir):
    first = Serve(var_dir)
    try:
        assert first.health() == {
            "http": 200, "status": "ok", "postgres": "ok", "redis": "ok", "worker": 0,
            "role": "all", "services": dict.fromkeys(
                ("callbacks", "vendor_connectors", "smpp_server", "viber_connectors",
                 "viber_cascade", "housekeeping"), "ok")}
        if os.environ.get("HERALD_TEST_SMPP_PORT", "1") == "1":
            with socket.create_connection(("127.0.0.1", first.smpp_port), timeout=5):
                pass
        orphan_pg = _postmaster(var_dir)
        assert orphan_pg is not None
    except BaseException:
        first.proc.kill()
        raise
    first.stop(signal.SIGKILL)
    # the crash leaves PostgreSQL running, as the issue describes
    assert psutil.pid_exists(orphan_pg)

    second = Serve(var_dir)
    try:
        assert second.health()["http"] == 200
        # the orphan was stopped and a server owned by this process started
        assert not psutil.pid_exists(orphan_pg) or psutil.Process(orphan_pg).status() == "zombie"
        assert _postmaster(var_dir) not in (None, orphan_pg)
        # data survived: the admin seeded by the first run is still the only one
        assert "First admin" not in second.output()
    finally:
        stopped_in = second.stop(signal.SIGINT)
    assert second.proc.returncode == 0, second.output()
    assert stopped_in < 10
    deadline = time.monotonic() + 5
    while _server_processes(var_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _server_processes(var_dir) == []
    assert "event=stopped" in second.output()


def test_sigterm_stops_and_leaves_no_servers(var_dir):
    serve = Serve(var_dir)
    try:
        serve.health()
    except BaseException:
        serve.proc.kill()
        raise
    serve.stop(signal.SIGTERM)
    assert serve.proc.returncode == 0
    assert _server_processes(var_dir) == []


def _workers(serve: Serve) -> list[psutil.Process]:
    found = []
    for proc in psutil.Process(serve.proc.pid).children():
        try:
            if "gateway.runtime.cli" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:  # a dead worker not reaped yet
            continue
    return found


def _wait(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@contextlib.contextmanager
def _stops_clean(serve: Serve, var_dir: Path) -> Iterator[None]:
    """Around checks on a parent with workers: if they fail, kill the whole process tree;
    if they pass, SIGTERM must stop it with exit code 0 and no embedded server left."""
    try:
        yield
    except BaseException:
        for proc in psutil.Process(serve.proc.pid).children(recursive=True):
            proc.kill()
        serve.proc.kill()
        raise
    serve.stop(signal.SIGTERM)
    assert serve.proc.returncode == 0, serve.output()
    assert _server_processes(var_dir) == []


def test_workers_share_the_ports_and_come_back_when_they_die(var_dir):
    from smpp.codec import decode, encode
    from smpp.pdu import BindTransceiver

    serve = Serve(var_dir, HERALD_WORKERS="2")
    with _stops_clean(serve, var_dir):
        assert serve.health()["http"] == 200
        workers = _wait(lambda: len(_workers(serve)) == 2 and _workers(serve))
        for worker in workers:  # each worker listens on both shared ports itself
            _wait(lambda w=worker: {serve.http_port, serve.smpp_port} <= {
                c.laddr.port for c in w.net_connections("tcp") if c.status == psutil.CONN_LISTEN})
        # Every worker serves: each accepts connections on the shared ports (the kernel
        # spreads them), and an SMPP bind there is answered by Herald, not refused.
        for _ in range(8):
            health = serve.health()
            assert health["http"] == 200 and health["worker"] in (1, 2), health
            assert health["services"]["smpp_server"] == "ok"
            with socket.create_connection(("127.0.0.1", serve.smpp_port), timeout=5) as sock:
                sock.sendall(encode(BindTransceiver(sequence_number=1, system_id="nobody",
                                                    password="wrong")))
                answer = decode(_read_pdu(sock))
                assert answer.sequence_number == 1 and answer.command_status != 0
        victim = workers[0]
        victim.kill()
        replaced = _wait(lambda: (len(_workers(serve)) == 2
                                  and victim.pid not in {p.pid for p in _workers(serve)}
                                  and _workers(serve)))
        assert "event=worker_died" in serve.output()
        assert serve.health()["http"] == 200
    for proc in replaced:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE


def _get(port: int, path: str) -> tuple[int, dict]:
    """Status and JSON body of ``GET path``, whatever the status."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_healthz_says_which_role_the_answering_worker_has(var_dir):
    serve = Serve(var_dir, HERALD_WORKERS="2", HERALD_WORKER_ROLES="ingress,egress")
    with _stops_clean(serve, var_dir):
        serve.health()
        seen: dict[int, dict] = {}

        def both_answered() -> bool:
            # the kernel spreads connections over the workers sharing the HTTP port
            status, body = _get(serve.http_port, "/healthz")
            if status == 200:
                seen[body["worker"]] = body
            return len(seen) == 2

        _wait(both_answered)
        assert seen[1]["role"] == "ingress" and seen[1]["services"] == {"smpp_server": "ok"}
        assert seen[2]["role"] == "egress" and "smpp_server" not in seen[2]["services"]
        assert set(seen[2]["services"]) == {"callbacks", "vendor_connectors", "viber_connectors",
                                            "viber_cascade", "housekeeping"}
        # ?service=smpp_server: 200 from the ingress worker only, 404 from the egress one
        answers: dict[int, int] = {}

        def asked_both() -> bool:
            status, body = _get(serve.http_port, "/healthz?service=smpp_server")
            answers[body["worker"]] = status
            return len(answers) == 2

        _wait(asked_both)
        assert answers == {1: 200, 2: 404}


def _read_pdu(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 4 or len(data) < int.from_bytes(data[:4], "big"):
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("connection closed before a whole PDU")
        data += chunk
    return data
