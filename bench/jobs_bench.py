"""Jobs, erasure and retention at volume, in one run, on SQLite or PostgreSQL.

- Job throughput: no-op jobs drained by 1 and 2 worker threads through our queue (claim with
  a lease, attempt row, heartbeat, compare-and-set completion), against the baseline of the
  same number of bare `UPDATE ... SET state='done'` transactions: what leases and attempt
  records cost per job.
- Erasure: one subject with N records; seconds from the job's claim to `completed`.
- Retention: a sweep over M records that are all due.

Usage: python bench/jobs_bench.py [--database-url URL] [--jobs 2000] [--records 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, update  # noqa: E402

from app.auth.guard import Caller  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import upgrade  # noqa: E402
from app.dsr import service as dsr  # noqa: E402
from app.jobs import queue, worker  # noqa: E402
from app.jobs.models import Job  # noqa: E402
from app.records import service as records  # noqa: E402
from app.retention import sweep  # noqa: E402
from app.runtime import Runtime, open_runtime  # noqa: E402

POLICY = Path(__file__).resolve().parent.parent / "policies"
CALLER = Caller(sub="bench", roles=("compliance_officer",), scopes=frozenset({"dsr:verify"}))


@queue.handler("bench.noop")
def _noop(runtime: Runtime, claimed: queue.Claimed) -> None:
    return None


def _queue(runtime: Runtime, n: int) -> None:
    with runtime.transaction() as session:
        for _ in range(n):
            queue.enqueue(session, "bench.noop")


def job_throughput(runtime: Runtime, n: int, threads: int) -> float:
    _queue(runtime, n)
    start = time.perf_counter()

    def drain(name: str) -> None:
        while worker.run_once(runtime, worker=name) is not None:
            pass

    pool = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return n / (time.perf_counter() - start)


def bare_throughput(runtime: Runtime, n: int) -> float:
    _queue(runtime, n)
    with runtime.session_factory() as session:
        ids = list(session.scalars(select(Job.id).where(Job.state == "queued")))
    start = time.perf_counter()
    for job_id in ids:
        with runtime.session_factory() as session:
            session.execute(update(Job).where(Job.id == job_id).values(state="done"))
            session.commit()
    return len(ids) / (time.perf_counter() - start)


def _write(runtime: Runtime, subject: str, n: int) -> None:
    keys = records.Keys(keyring=runtime.require_keyring(), hash_key=runtime.pii_hash_key,
                        scan=lambda text: [])  # no free text in these records
    with runtime.transaction() as session:
        for i in range(n):
            records.create(session, runtime.policy, keys, caller=CALLER, subject_id=subject,
                           purpose="order_fulfilment" if i % 2 else "account_management",
                           record_type="order" if i % 2 else "customer_profile",
                           data={"order_number": f"SO-{i}", "amount": "10.00",
                                 "shipping_address": "上海市浦东新区世纪大道100号",
                                 "recipient_phone": "13912345678"} if i % 2 else
                           {"name": "张伟", "email": f"u{i}@example.cn",
                            "phone": "13812345678"})


def erasure_seconds(runtime: Runtime, n: int) -> float:
    _write(runtime, "bench-erase", n)
    with runtime.transaction() as session:
        dsr.submit(session, runtime.policy, runtime.require_keyring(), caller=CALLER,
                   subject_id="bench-erase", identifiers=None, type="erasure",
                   jurisdiction="GDPR", verification={"method": "id_document"}, corrections=None,
                   language=None)
    start = time.perf_counter()
    while (outcome := worker.run_once(runtime, worker="bench")) is not None:
        if outcome != "done":
            raise SystemExit(f"the erasure job ended {outcome}")
    return time.perf_counter() - start


def sweep_seconds(runtime: Runtime, n: int) -> tuple[float, dict[str, dict[str, int]]]:
    for i in range(0, n, 500):
        _write(runtime, f"bench-sweep-{i}", min(500, n - i))
    start = time.perf_counter()
    report = sweep.run(runtime.transaction, runtime.policy,
                       now=datetime.now(UTC) + timedelta(days=4000))
    return time.perf_counter() - start, report.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        upgrade(url)
        runtime = open_runtime(Settings(env="dev", data_dir=Path(tmp) / "data",
                                        database_url=url, policy_dir=POLICY))
        try:
            dialect = runtime.engine.dialect.name
            bare = bare_throughput(runtime, args.jobs)
            one = job_throughput(runtime, args.jobs, 1)
            two = job_throughput(runtime, args.jobs, 2)
            print(f"{dialect}: jobs/s  1 worker {one:.0f}, 2 workers {two:.0f}; "  # noqa: T201
                  f"bare update transactions {bare:.0f}/s")
            seconds = erasure_seconds(runtime, args.records)
            print(f"{dialect}: erasure of one subject with {args.records} records: "  # noqa: T201
                  f"{seconds:.2f} s ({args.records / seconds:.0f} records/s)")
            seconds, report = sweep_seconds(runtime, args.records)
            print(f"{dialect}: retention sweep over {args.records} due records: "  # noqa: T201
                  f"{seconds:.2f} s ({args.records / seconds:.0f} records/s) {report}")
        finally:
            runtime.close()


if __name__ == "__main__":
    main()
