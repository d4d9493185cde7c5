"""`pgw serve --workers N`: every worker listens on a socket of its own (SO_REUSEPORT), so the
kernel spreads connections over the workers instead of the first to wake taking them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.server import PGW, pgw_serve, wait_for
from tests.test_cli import cli_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CONNECTIONS = 64


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that ended since the listing
            continue
    return found


def listeners(server: int, port: int) -> dict[int, set[int]]:
    """The listening sockets on `port` that each of the server's child processes holds."""
    listening = {inode for inode, state, local in tcp_sockets() if state == "0A"
                 and local == port}
    held = {pid: socket_inodes(pid) & listening for pid in children(server)}
    return {pid: inodes for pid, inodes in held.items() if inodes}


def two_listening(server: int, port: int,
                  without: int | None = None) -> dict[int, set[int]] | None:
    found = listeners(server, port)
    return found if len(found) == 2 and without not in found else None


def tcp_sockets() -> list[tuple[int, str, int]]:
    """(inode, state, local port) of every TCP socket of this network namespace."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            rows.append((int(fields[9]), fields[3], int(fields[1].rsplit(":", 1)[1], 16)))
    return rows


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def test_connections_spread_over_the_workers(settings: Settings) -> None:
    clients: list[socket.socket] = []
    with pgw_serve(cli_env(settings), workers=2) as (server, base):
        port = int(base.rsplit(":", 1)[1])
        # the first worker up answered; the second may still be loading its models
        sockets = wait_for(lambda: two_listening(server.pid, port), timeout=60,
                           what="both workers listening", every=0.2)
        assert not set.intersection(*sockets.values()), "each worker has a socket of its own"

        def held() -> list[int] | None:
            established = {inode for inode, state, local in tcp_sockets() if state == "01"
                           and local == port}
            counts = [len(socket_inodes(pid) & established) for pid in sockets]
            return counts if sum(counts) == CONNECTIONS else None

        try:
            # connections opened and kept, as a client's pool keeps them; before their first
            # request no keep-alive timer runs, so a loaded machine cannot close one early
            for _ in range(CONNECTIONS):
                clients.append(socket.create_connection(("127.0.0.1", port)))
            counts = wait_for(held, timeout=30, what="every connection accepted by a worker")
        finally:
            for client in clients:
                client.close()
    # a hash over the connections' ports: about half each (below 16 of 64: p < 1e-4)
    assert min(counts) >= CONNECTIONS // 4, counts


def test_a_port_in_use_stops_the_server(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([PGW, "serve", "--port", str(port), "--workers", "2"],
                                env=cli_env(settings), capture_output=True, text=True,
                                timeout=60, check=False)
    assert result.returncode != 0
    assert "address already in use" in result.stderr.lower()


def test_a_killed_worker_is_replaced_with_a_socket_of_its_own(settings: Settings) -> None:
    with pgw_serve(cli_env(settings), workers=2) as (server, base):
        port = int(base.rsplit(":", 1)[1])
        first = wait_for(lambda: two_listening(server.pid, port), timeout=60,
                         what="both workers listening", every=0.2)
        victim = next(iter(first))
        # each worker's live gauges (threads busy, requests waiting) are in a file of its own
        live = settings.data_dir / "metrics" / f"gauge_livesum_{victim}.db"
        wait_for(live.exists, timeout=30, what="the worker's live gauges")
        os.kill(victim, signal.SIGKILL)
        now = wait_for(lambda: two_listening(server.pid, port, without=victim), timeout=90,
                       what="a replacement worker listening", every=0.2)
        assert not set.intersection(*now.values())
        for _ in range(20):  # new connections, whichever socket the kernel picks
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        # the dead worker's are forgotten, not summed into every scrape until a restart
        assert not live.exists()


def is_scan_helper(pid: int) -> bool:
    """Whether `pid` is a running PII scan helper process."""
    try:
        return b"app.pii.scan_helper" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def helpers_of(workers: list[int]) -> dict[int, list[int]]:
    """Each worker's PII scan helper processes."""
    return {worker: [c for c in children(worker) if is_scan_helper(c)] for worker in workers}


def test_each_worker_has_a_scan_helper_that_reads_long_texts_and_ends_with_it(
        settings: Settings) -> None:
    from tests.pii.test_scan_process import prose
    from tests.tokens import make_token

    token = make_token(scope="pii:scan")
    text = prose(60_000, seed=9)
    with pgw_serve(cli_env(settings), workers=2) as (server, base):
        port = int(base.rsplit(":", 1)[1])
        workers = list(wait_for(lambda: two_listening(server.pid, port), timeout=60,
                                what="both workers listening", every=0.2))
        def one_each() -> dict[int, list[int]] | None:
            found = helpers_of(workers)
            return found if all(len(h) == 1 for h in found.values()) else None

        helpers = wait_for(one_each, timeout=60, what="a helper per worker", every=0.2)
        cpu_before = {pid: helper_cpu(pid) for h in helpers.values() for pid in h}
        with httpx.Client(base_url=base, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            # a scan shares its work only when its helper is free: scan until one has done
            # some
            def helped() -> bool:
                answer = client.post("/v1/pii/scan", json={"text": text})
                assert answer.status_code == 200, answer.text
                assert {"PERSON", "LOCATION"} <= {f["type"] for f in answer.json()["entities"]}
                return any(helper_cpu(pid) - cpu_before[pid] > 0.2 for pid in cpu_before)
            wait_for(helped, timeout=120, what="a helper reading part of a scan", every=0.5)
    # the workers have stopped: their helpers with them
    wait_for(lambda: not any(map(is_scan_helper, cpu_before)), timeout=30,
             what="the helpers exiting")


def helper_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sighup_replaces_every_worker_once_its_replacement_has_started(
        settings: Settings) -> None:
    """`kill -HUP`: a rolling restart. A new worker loads its PII models and its scan helper's
    before it serves, longer than uvicorn's 5-second wait for it, which gave every restart up
    and kept the old workers."""
    with pgw_serve(cli_env(settings), workers=2) as (server, base):
        port = int(base.rsplit(":", 1)[1])
        first = wait_for(lambda: two_listening(server.pid, port), timeout=60,
                         what="both workers listening", every=0.2)
        os.kill(server.pid, signal.SIGHUP)

        def replaced() -> dict[int, set[int]] | None:
            found = listeners(server.pid, port)
            return found if len(found) == 2 and not set(found) & set(first) else None

        wait_for(replaced, timeout=240, what="both workers replaced", every=0.5)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
