"""The embedded servers started by `loom serve` and `loom worker` on a bare machine: shared by the Loom
processes using them, stopped by the last one to exit (SIGTERM or Ctrl-C), checked by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_run import LOOM, bare_machine_env, free_port, processes, running, short_data_dir


class Machine:
    """A data directory with no servers configured, and the `loom` processes started on it."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = short_data_dir()
        self.port = free_port()
        self.env = bare_machine_env(self.data_dir, self.port, LOOM_LOG_JSON="false")
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{args[0]}.log").open("wb")
        process = subprocess.Popen([LOOM, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def servers(self) -> dict[str, int]:
        """The pids of the embedded PostgreSQL (postmaster) and Redis: the processes naming the data
        directory on their command line."""
        pids = {}
        for pid, _, cmdline in processes():
            if str(self.data_dir) in cmdline:
                pids["redis" if "redis-server" in cmdline else "postgres"] = pid
        return pids

    def wait_for_servers(self, seconds: float = 90) -> dict[str, int]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = self.servers()
            if len(running(set(pids.values()))) == 2:
                return pids
            time.sleep(0.2)
        pytest.fail(f"the embedded servers did not start in {seconds} s")

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for pid in running(set(self.servers().values())):  # a failed test: stop what it left
            os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(self.data_dir)], check=False)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    bare = Machine(tmp_path)
    yield bare
    bare.close()


def wait_gone(pids: set[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while running(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(pids) == set(), "the embedded servers are still running"


def redis_ok(base: str) -> bool:
    try:
        return bool(httpx.get(f"{base}/readyz", timeout=5).json()["checks"]["redis"] == "ok")
    except (httpx.TransportError, ValueError, KeyError):
        return False


def wait_for_api(base: str, process: subprocess.Popen[bytes], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "loom serve exited"
        if redis_ok(base):
            return
        time.sleep(0.3)
    pytest.fail(f"loom serve did not answer in {seconds} s")


@pytest.mark.timeout(180)
def test_loom_serve_alone_stops_the_servers_it_started_on_sigterm(machine: Machine) -> None:
    serve = machine.start("serve")
    servers = set(machine.wait_for_servers().values())
    wait_for_api(f"http://127.0.0.1:{machine.port}", serve)
    serve.send_signal(signal.SIGTERM)  # as docker stop, systemd or `kill` would
    assert serve.wait(timeout=30) == 128 + signal.SIGTERM
    wait_gone(servers, 10)
    assert "Traceback" not in machine.log("serve")
    assert (machine.data_dir / "postgres" / "PG_VERSION").exists(), "the data stays"


@pytest.mark.timeout(240)
def test_serve_and_worker_share_the_servers_and_the_last_to_exit_stops_them(machine: Machine) -> None:
    worker = machine.start("worker")  # starts the servers
    servers = machine.wait_for_servers()
    serve = machine.start("serve")  # uses them
    base = f"http://127.0.0.1:{machine.port}"
    wait_for_api(base, serve)
    assert machine.servers() == servers, "the API reused the worker's servers"

    worker.send_signal(signal.SIGINT)  # Ctrl-C in the worker's terminal
    assert worker.wait(timeout=30) == 0
    time.sleep(1)
    assert running(set(servers.values())) == set(servers.values()), "the API still uses them"
    assert redis_ok(base)

    serve.send_signal(signal.SIGINT)
    assert serve.wait(timeout=30) == 0
    wait_gone(set(servers.values()), 10)
    for name in ("worker", "serve"):
        assert "Traceback" not in machine.log(name)


@pytest.mark.timeout(240)
def test_a_killed_process_leaves_the_servers_to_the_next_one_that_exits(machine: Machine) -> None:
    serve = machine.start("serve")
    servers = set(machine.wait_for_servers().values())
    wait_for_api(f"http://127.0.0.1:{machine.port}", serve)
    serve.kill()  # no exit handlers: it cannot sign out
    serve.wait()
    assert running(servers) == servers
    migrated = subprocess.run(
        [LOOM, "migrate"], env=machine.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    wait_gone(servers, 10)  # the last user (migrate) stopped them, seeing the killed one gone


@pytest.mark.timeout(180)
def test_on_ctrl_c_loom_run_checkpoints_the_postgres_it_started_while_its_children_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a CHECKPOINT writes while the API and the worker stop, PostgreSQL's shutdown checkpoint (most
    of a stop on a busy disk, and of `loom run`'s 5 s) need not write."""
    from services.core import embedded

    monkeypatch.setattr(embedded, "_started", {})
    assert embedded.checkpoint_started() is None  # no server of ours: nothing to do
    data_dir = short_data_dir()
    pg = embedded.EmbeddedPostgres(data_dir / "postgres")
    url = pg.start()
    try:
        monkeypatch.setitem(embedded._started, "postgres", (pg, url))

        def requested() -> int:
            out = pg.server.psql("SELECT checkpoints_req FROM pg_stat_bgwriter;")
            return int(next(line for line in out.splitlines() if line.strip().isdigit()).strip())

        before = requested()
        thread = embedded.checkpoint_started()
        assert thread is not None
        assert thread.daemon  # never holds the process up
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert requested() == before + 1
    finally:
        pg.stop()
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)
