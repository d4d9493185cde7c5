"""The witness's evidence of a refusal: kept once per refused checkpoint, not at every poll for as
long as the refusal lasts (before: a `refused-*.txt` every 3 s)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.audit import verifier, witness
from app.keys.signing import Signer

LOG = Signer(Ed25519PrivateKey.generate())
ORIGIN = "privacy-gateway/test"


def make_note(size: int, *, tag: str = "") -> str:
    root = hashlib.sha256(f"{tag}{size}".encode()).digest()
    body = verifier.note_body(ORIGIN, size, root)
    return body + "\n" + verifier.signature_line(ORIGIN, LOG.public_key,
                                                 LOG.private_key.sign(body.encode()))


class Gateway:
    """What `GET /v1/audit/checkpoint` answers, changed by the test between polls."""

    def __init__(self, note: str) -> None:
        self.note = note

    def get(self, path: str, **params: int) -> bytes:
        assert path == "/v1/audit/checkpoint", path
        return self.note.encode()


class Clock:
    """The witness's `datetime`: a second later at every look, as polls are (so a file per
    refusal would not hide behind one name per second)."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self, tz: object) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


class Polls(Exception):
    pass


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gateway:
    served = Gateway(make_note(5))
    monkeypatch.setattr(witness.Witness, "_get", lambda _self, path, **p: served.get(path, **p))
    monkeypatch.setattr(witness, "datetime", Clock())
    return served


def make_witness(tmp_path: Path) -> witness.Witness:
    watcher = witness.open_witness(name="w", key_file=tmp_path / "key.pem",
                                   log_key=LOG.public_key, state_dir=tmp_path / "state",
                                   url="http://gateway.invalid", token="t")
    (tmp_path / "state" / "checkpoint").write_text(make_note(8))  # witnessed earlier
    return watcher


def refusals(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "state").glob("refused-*.txt"))


def test_a_lasting_refusal_is_recorded_once(tmp_path: Path, gateway: Gateway,
                                            monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    watcher = make_witness(tmp_path)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 20:
            raise Polls

    monkeypatch.setattr("app.audit.witness.time.sleep", sleep)
    with caplog.at_level("INFO", logger="pgw.audit.witness"), pytest.raises(Polls):
        witness.run(watcher, once=False, interval=3)
    [refusal] = refusals(tmp_path)
    assert refusal.read_text() == ("the log shrank from 8 to 5 entries: it was truncated or "
                                   f"rewritten\n\n{make_note(5)}")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # the 19 polls after it say so at INFO
    assert sum("still refuses" in r.getMessage() for r in caplog.records) == 19


def test_a_different_refused_checkpoint_is_new_evidence(tmp_path: Path,
                                                        gateway: Gateway) -> None:
    watcher = make_witness(tmp_path)
    assert [witness.run(watcher, once=True, interval=0) for _ in range(3)] == [1, 1, 1]
    assert len(refusals(tmp_path)) == 1  # `--once` from cron: the state directory remembers
    gateway.note = make_note(8, tag="rewritten")
    assert witness.run(watcher, once=True, interval=0) == 1
    assert witness.run(watcher, once=True, interval=0) == 1
    first, second = refusals(tmp_path)
    assert "two different trees of 8 entries" in second.read_text()
    assert second.read_text().endswith(make_note(8, tag="rewritten"))
