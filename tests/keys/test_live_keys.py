"""Keys across real processes: KEK rotation while two workers serve, destruction seen by another
process in the very next write, a wrong KEK and a damaged wrapped key named for what they are."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import select, update

from app.config import Settings
from app.keys.files import write_new
from app.keys.models import SubjectKey
from app.runtime import open_runtime
from tests.gateway import make_record
from tests.server import PGW, free_port, wait_for, wait_until_up
from tests.test_cli import cli_env
from tests.tokens import make_token

WRITER = make_token(sub="svc-crm", scope="records:write records:read",
                    roles=["support_agent"])
KEY_ADMIN = make_token(sub="ops", scope="keys:admin")
# A short DEK cache, so reads unwrap keys again during the test instead of using cached ones.
FAST_EXPIRY = {"PGW_DEK_CACHE_TTL_SECONDS": "0.2", "PGW_WORKER_IN_SERVE": "false"}
# one caller sends the whole load: its rate limit (200/s a process) would refuse some of it on
# a fast machine, and these tests count every answer
UNLIMITED = {"PGW_RATE_LIMITS": "default=0"}


@contextmanager
def serving(settings: Settings, *, workers: int = 1, **env: str) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen([PGW, "serve", "--port", str(port), "--workers", str(workers)],
                              env=cli_env(settings, **FAST_EXPIRY, **(UNLIMITED | env)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{base}/readyz")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


class Load:
    """Writes (new and known subjects) and reads in threads, counting every status."""

    def __init__(self, base: str, threads: int = 4):
        self.base, self.statuses, self.failures = base, Counter[int](), list[str]()
        self.stop = threading.Event()
        self.records: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {WRITER}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                subject = f"load-{n}-{i}" if i % 2 else f"load-{n}-known"
                response = client.post("/v1/records", json=make_record(subject_id=subject))
                self._count(response)
                if response.status_code == 201:
                    record_id = response.json()["record_id"]
                    self.records.append(record_id)
                    self._count(client.get(f"/v1/records/{record_id}",
                                           params={"purpose": "customer_support"}))
                if len(self.records) > 5:  # an older record, whose key has left the cache
                    self._count(client.get(f"/v1/records/{self.records[-5]}",
                                           params={"purpose": "customer_support"}))

    def _count(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 300:
            self.failures.append(f"{response.request.method} {response.status_code} "
                                 f"{response.text[:300]}")

    def answered(self, more: int) -> None:
        """Wait until the load has had `more` further answers (the servers are other
        processes: progress, not a fixed time, says enough has happened)."""
        target = self.statuses.total() + more
        wait_for(lambda: self.statuses.total() >= target or not any(
            thread.is_alive() for thread in self.threads), timeout=60,
            what=f"{more} more answers under load")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        self.answered(20)
        return self

    def __exit__(self, *_: object) -> None:
        self.answered(20)
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_kek_rotation_by_cli_and_api_while_two_workers_serve(settings: Settings) -> None:
    with serving(settings, workers=2) as base, Load(base) as load:
        cli = subprocess.run([PGW, "keys", "rotate-kek", "--batch-size", "20"],
                             env=cli_env(settings, **FAST_EXPIRY), capture_output=True,
                             text=True, timeout=120, check=False)
        assert cli.returncode == 0, cli.stderr
        load.answered(20)  # writes and reads go on under the KEK version the CLI made
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY_ADMIN}"})
        rotated = admin.post("/v1/keys/rotate", json={"kind": "kek"})
        assert rotated.status_code == 202, rotated.text
        assert rotated.json()["target_version"] == 3
        # the rotation is a job: a worker process (not the server) runs it
        worker = subprocess.run([PGW, "worker", "--until-idle"],
                                env=cli_env(settings, **FAST_EXPIRY), capture_output=True,
                                text=True, timeout=120, check=False)
        assert worker.returncode == 0, worker.stderr
        assert admin.get("/v1/keys/status").json()["rotations"][0]["status"] == "done"
        load.answered(20)  # and under the one the job made
        # every worker of the service knows every version, and says it is ready
        for _ in range(6):
            with httpx.Client(base_url=base, headers=admin.headers) as fresh:
                status = fresh.get("/v1/keys/status").json()
                assert status["kek"]["versions"] == [1, 2, 3]
                assert status["kek"]["current"] == 3
                assert fresh.get("/readyz").status_code == 200
    assert Counter(f[:60] for f in load.failures) == {}
    assert load.statuses[201] > 20
    assert sum(load.statuses.values()) > 60


def test_a_write_after_a_destruction_elsewhere_never_uses_the_destroyed_key(
        settings: Settings) -> None:
    with serving(settings) as writer_base, serving(settings) as other_base:
        writer = httpx.Client(base_url=writer_base, headers={"Authorization": f"Bearer {WRITER}"})
        reader = httpx.Client(base_url=other_base, headers={"Authorization": f"Bearer {WRITER}"})
        admin = httpx.Client(base_url=other_base,
                             headers={"Authorization": f"Bearer {KEY_ADMIN}"})
        support = {"purpose": "customer_support"}
        for attempt in range(10):
            subject = f"shred-{attempt}"
            first = writer.post("/v1/records", json=make_record(subject_id=subject))
            assert first.status_code == 201, first.text
            destroyed = admin.post(f"/v1/keys/subjects/{subject}/destroy", json={})
            assert destroyed.json()["destroyed"] is True
            # at once, through the process that still had the key cached
            after = writer.post("/v1/records", json=make_record(subject_id=subject))
            assert after.status_code == 201, after.text
            gone = writer.get(f"/v1/records/{first.json()['record_id']}", params=support)
            assert gone.status_code == 200, gone.text
            assert gone.json()["data"] == {}
            reasons = {name: field["reason"] for name, field in gone.json()["access"].items()}
            assert {name for name, why in reasons.items() if why.startswith("subject-erased")} \
                == {"name", "email", "phone"}
            # read where nothing is cached: the new record is under a key that still exists
            stored = reader.get(f"/v1/records/{after.json()['record_id']}", params=support)
            assert stored.status_code == 200, stored.text
            assert stored.json()["data"]["email"] == "Z***@Example.cn"
        # and while writes to the subject run concurrently: every write sent after the
        # destruction was acknowledged is readable, under a key that still exists
        for attempt in range(3):
            later = writes_after_a_destruction(writer, admin, f"race-{attempt}")
            assert later
            for record_id in later:
                stored = reader.get(f"/v1/records/{record_id}", params=support)
                assert stored.json()["data"].get("email") == "Z***@Example.cn", stored.text


def writes_after_a_destruction(writer: httpx.Client, admin: httpx.Client,
                               subject: str) -> list[str]:
    """Write to `subject` from three threads while its keys are destroyed; the records whose
    request was sent after the destruction had been acknowledged."""
    sent: list[tuple[float, str]] = []
    refused: list[str] = []  # answers other than 201, checked once the threads are done
    stop = threading.Event()

    def keep_writing() -> None:
        with httpx.Client(base_url=writer.base_url, headers=writer.headers) as client:
            while not stop.is_set():
                at = time.monotonic()
                response = client.post("/v1/records", json=make_record(subject_id=subject))
                if response.status_code == 201:
                    sent.append((at, response.json()["record_id"]))
                else:
                    refused.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=keep_writing) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(sent) >= 6, what="writes before the destruction")
    assert admin.post(f"/v1/keys/subjects/{subject}/destroy", json={}).status_code == 200
    acknowledged = time.monotonic()
    wait_for(lambda: sum(at > acknowledged for at, _ in list(sent)) >= 6,
             what="writes after the destruction")
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    # a write racing the destruction may be refused as busy (the fail-safe answer: nothing
    # stored, try again); nothing else
    assert all(answer.startswith("503 ") and "urn:pgw:problem:database-busy" in answer
               for answer in refused), refused
    return [record_id for at, record_id in sent if at > acknowledged]


def test_a_wrong_kek_seals_the_process_with_the_reason(settings: Settings,
                                                      tmp_path: Path) -> None:
    first = open_runtime(settings)  # records the check value of the real KEK v1
    assert first.sync_keys() == []
    first.close()
    other_dir = tmp_path / "other"
    write_new(other_dir / "kek" / "kek-v1.key", bytes(range(32)))
    wrong = settings.model_copy(update={"data_dir": other_dir})
    runtime = open_runtime(wrong)
    try:
        assert runtime.sealed
        assert runtime.keyring is not None
        assert "KEK version 1 does not match the check value" in runtime.keyring.seal_reasons[0]
    finally:
        runtime.close()


def test_a_wrong_kek_answers_503_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    open_runtime(settings).close()
    other_dir = tmp_path / "other"
    write_new(other_dir / "kek" / "kek-v1.key", bytes(range(32)))
    port = free_port()
    server = subprocess.Popen([PGW, "serve", "--port", str(port)],
                              env=cli_env(settings, PGW_DATA_DIR=str(other_dir), **FAST_EXPIRY),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{base}/healthz")
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "sealed"
        assert "does not match the check value" in " ".join(ready.json()["reasons"])
        write = httpx.post(f"{base}/v1/records", json=make_record(),
                           headers={"Authorization": f"Bearer {WRITER}"})
        assert write.status_code == 503
        assert write.json()["type"] == "urn:pgw:problem:sealed"
        assert "does not match the check value" in write.json()["detail"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_damaged_wrapped_key_is_named(settings: Settings) -> None:
    with serving(settings) as base:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {WRITER}"})
        written = client.post("/v1/records", json=make_record(subject_id="damaged-1"))
        assert written.status_code == 201
        runtime = open_runtime(settings)
        try:
            with runtime.transaction() as session:
                rows = session.scalars(select(SubjectKey)
                                       .where(SubjectKey.subject_id == "damaged-1")).all()
                for row in rows:  # one key per cipher the policy uses
                    assert row.wrapped_dek is not None
                    damaged = row.wrapped_dek[:-1] + bytes([row.wrapped_dek[-1] ^ 1])
                    session.execute(update(SubjectKey).where(SubjectKey.id == row.id)
                                    .values(wrapped_dek=damaged))
        finally:
            runtime.close()
        def read_once() -> httpx.Response | None:
            answer = client.get(f"/v1/records/{written.json()['record_id']}",
                                params={"purpose": "customer_support"})
            assert answer.status_code in (200, 500), answer.text  # 200 from the cached key
            return answer if answer.status_code == 500 else None

        # once the serving process's cached key expires (0.2 s), it unwraps the damaged one
        read = wait_for(read_once, what="reading with the damaged key")
        assert read.json()["type"] == "urn:pgw:problem:key-damaged"
        assert "damaged-1" in read.json()["detail"]
        assert httpx.get(f"{base}/readyz").status_code == 200  # one key, not the service
