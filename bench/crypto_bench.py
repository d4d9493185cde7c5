"""Field encryption cost: microseconds per encrypt+decrypt of a short field through our field
API (per-subject key from the cache, AAD binding, self-describing token) and through a bare
cipher call on the same data (a fresh random nonce each time), for AES-256-GCM and SM4-GCM.

The field API runs over 1,000 subjects and a different record for every field, as real traffic
would; the bare call has one key and one associated-data string.

Usage: python bench/crypto_bench.py [--fields 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.orm import Session  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import upgrade  # noqa: E402
from app.keys.ciphers import cipher  # noqa: E402
from app.keys.fields import decrypt_field, encrypt_field  # noqa: E402
from app.keys.keyring import Keyring  # noqa: E402
from app.runtime import open_runtime  # noqa: E402

VALUE = "13812345678"
SUBJECTS = 1000


ROUNDS = 20


def bare_round(aead: Any, count: int) -> float:
    aad = b"pgw1\x00subject-1\x00record-1\x00phone\x001\x001"
    data = VALUE.encode()
    started = time.perf_counter()
    for _ in range(count):
        nonce = os.urandom(12)
        aead.decrypt(nonce, aead.encrypt(nonce, data, aad), aad)
    return (time.perf_counter() - started) / count * 1e6


def ours_round(session: Session, keyring: Keyring, work: list[tuple[str, str]]) -> float:
    started = time.perf_counter()
    for subject, record in work:
        token = encrypt_field(session, keyring, subject_id=subject, field="phone", value=VALUE,
                              context=record)
        decrypt_field(session, keyring, subject_id=subject, field="phone", token=token,
                      context=record)
    return (time.perf_counter() - started) / len(work) * 1e6


def measure(name: str, fields: int, workdir: Path) -> tuple[float, float, float]:
    """Median µs per call of the bare cipher and of our API, and the median of the per-round
    ratios. Rounds alternate between the two, so both see the same machine."""
    url = f"sqlite:///{workdir / f'{name}.sqlite3'}"
    upgrade(url)
    settings = Settings(data_dir=workdir / "data", database_url=url, cipher=name,
                        policy_dir=Path(__file__).resolve().parent.parent / "policies")
    runtime = open_runtime(settings)
    keyring = runtime.keyring
    assert keyring is not None  # noqa: S101
    spec = cipher(name)
    aead = spec.aead(os.urandom(spec.key_bytes))
    subjects = [f"subject-{i}" for i in range(SUBJECTS)]
    per_round = fields // ROUNDS
    bare_times, our_times = [], []
    with runtime.session_factory() as session:
        for subject in subjects:  # keys made and cached before timing
            encrypt_field(session, keyring, subject_id=subject, field="phone", value=VALUE)
        for n in range(ROUNDS):
            bare_times.append(bare_round(aead, per_round))
            # inputs made before the clock starts, as the bare call's are
            work = [(subjects[i % SUBJECTS], f"record-{i}")
                    for i in range(n * per_round, (n + 1) * per_round)]
            our_times.append(ours_round(session, keyring, work))
        session.commit()
    runtime.close()
    ratios = [ours / bare for ours, bare in zip(our_times, bare_times, strict=True)]
    return (statistics.median(bare_times), statistics.median(our_times),
            statistics.median(ratios))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fields", type=int, default=100_000)
    args = parser.parse_args()
    print(f"encrypt + decrypt of a {len(VALUE)}-character field, {args.fields} times in "
          f"{ROUNDS} alternating rounds; medians\n")
    print("| cipher | bare call (µs) | field API (µs) | ratio |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("aes-256-gcm", "sm4-gcm"):
            baseline, measured, ratio = measure(name, args.fields, Path(tmp))
            print(f"| {name} | {baseline:.2f} | {measured:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
