"""JSON log lines keep what the code passed as `extra`: a job's id, kind and worker."""

from __future__ import annotations

import json
import logging
from pathlib import PurePosixPath

from app.logs import JsonFormatter


def line(**extra: object) -> dict[str, object]:
    record = logging.getLogger("pgw.jobs").makeRecord(
        "pgw.jobs", logging.WARNING, __file__, 1, "job gave up", (), None, extra=extra)
    return dict(json.loads(JsonFormatter().format(record)))


def test_every_extra_field_is_kept() -> None:
    logged = line(job_id="j-1", kind="dsr.run", worker="host:1:ab", attempts=5, request_id="r")
    assert logged["msg"] == "job gave up"
    assert {k: logged[k] for k in ("job_id", "kind", "worker", "attempts", "request_id")} == {
        "job_id": "j-1", "kind": "dsr.run", "worker": "host:1:ab", "attempts": 5,
        "request_id": "r"}
    assert not {"args", "pathname", "levelno"} & set(logged)  # LogRecord's own fields stay out


def test_an_extra_named_like_a_line_field_does_not_overwrite_it() -> None:
    logged = line(level="mine")
    assert (logged["level"], logged["extra_level"]) == ("WARNING", "mine")


def test_a_value_json_cannot_encode_is_written_as_text() -> None:
    assert line(path=PurePosixPath("/srv/pgw"))["path"] == "/srv/pgw"
