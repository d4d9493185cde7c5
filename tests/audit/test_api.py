from __future__ import annotations

from collections.abc import Callable

import pytest

from app.audit import sequencer
from app.config import Settings
from app.main import create_app
from app.runtime import Runtime
from app.schemas import encode_cursor
from tests.audit.conftest import write_entries
from tests.server import LiveServer
from tests.tokens import make_token


def test_filters_and_cursor_pagination(runtime: Runtime, live: LiveServer) -> None:
    write_entries(runtime, 5, actor="svc-a", subject_id="s-1")
    write_entries(runtime, 4, actor="svc-b", subject_id="s-2", action="consent.granted")
    client = live.client(make_token())

    page = client.get("/v1/audit", params={"actor": "svc-a", "limit": 2}).json()
    assert [e["seq"] for e in page["items"]] == [1, 2]
    page2 = client.get("/v1/audit", params={"actor": "svc-a", "limit": 2,
                                            "cursor": page["next"]}).json()
    assert [e["seq"] for e in page2["items"]] == [3, 4]

    granted = client.get("/v1/audit", params={"action": "consent.granted"}).json()
    assert {e["subject_id"] for e in granted["items"]} == {"s-2"}
    assert len(granted["items"]) == 4
    assert granted["next"] is None
    assert client.get("/v1/audit", params={"subject_id": "s-1"}).json()["items"][0]["actor"] \
        == "svc-a"
    assert client.get("/v1/audit", params={"outcome": "denied"}).json()["items"] == []


def test_time_filters(runtime: Runtime, live: LiveServer) -> None:
    write_entries(runtime, 3)
    client = live.client(make_token())
    items = client.get("/v1/audit").json()["items"]
    middle = items[1]["ts"]
    after = client.get("/v1/audit", params={"since": middle, "actor": "svc-test"}).json()
    assert [e["seq"] for e in after["items"]] == [2, 3]
    before = client.get("/v1/audit", params={"until": middle, "actor": "svc-test"}).json()
    assert [e["seq"] for e in before["items"]] == [1]
    naive = client.get("/v1/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "since"


def test_reading_the_log_is_audited(live: LiveServer) -> None:
    client = live.client(make_token(sub="auditor-7", roles=["compliance_officer"]))
    client.get("/v1/audit", params={"actor": "nobody"})
    entry = client.get("/v1/audit").json()["items"][0]
    assert entry["action"] == "audit.read"
    assert entry["actor"] == "auditor-7"
    assert entry["roles"] == ["compliance_officer"]
    assert entry["details"] == {"returned": 0, "filters": ["actor"]}
    assert entry["outcome"] == "allowed"
    assert len(entry["policy_version"]) == 16
    assert entry["request_id"]


def test_request_id_is_recorded(live: LiveServer) -> None:
    client = live.client(make_token())
    response = client.get("/v1/audit", headers={"X-Request-ID": "req-abc.123"})
    assert response.headers["x-request-id"] == "req-abc.123"
    assert client.get("/v1/audit").json()["items"][0]["request_id"] == "req-abc.123"


@pytest.mark.parametrize("limit", [0, 1001, -1])
def test_page_size_is_bounded(live: LiveServer, limit: int) -> None:
    response = live.client(make_token()).get("/v1/audit", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


def test_the_sequencer_signs_checkpoints_every_n_entries(make_settings: Callable[..., Settings],
                                              start_server: Callable[..., LiveServer]) -> None:
    settings = make_settings(audit_checkpoint_every=5)
    from app.runtime import open_runtime

    runtime = open_runtime(settings)
    try:
        write_entries(runtime, 12)
        while (step := sequencer.step(runtime, limit=5)) and step.added == 5:
            pass  # batches of 5: the first is signed, then each that crosses a multiple of 5
    finally:
        runtime.close()
    server = start_server(create_app(settings))
    client = server.client(make_token())
    page = client.get("/v1/audit/checkpoints").json()
    assert [c["size"] for c in page["items"]] == [5, 10]
    public_pem = client.get("/v1/audit/public-key").text
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    made = client.post("/v1/audit/checkpoints")
    assert made.status_code == 201
    assert made.json()["size"] == 12
    verify = client.get("/v1/audit/verify").json()
    assert verify["ok"] is True
    assert verify["checkpoints"] == 3


def test_checkpoint_of_an_empty_log(live: LiveServer) -> None:
    assert live.client(make_token()).post("/v1/audit/checkpoints").status_code == 204


def test_the_cursor_is_opaque_and_checked(runtime: Runtime, live: LiveServer) -> None:
    write_entries(runtime, 3, actor="svc-c")
    client = live.client(make_token())
    page = client.get("/v1/audit", params={"actor": "svc-c", "limit": 2}).json()
    assert page["next"] not in (None, "2")  # not the sequence number itself
    rest = client.get("/v1/audit", params={"actor": "svc-c", "cursor": page["next"]}).json()
    assert [e["seq"] for e in rest["items"]] == [3]
    for bad in ("2", "!!", encode_cursor("x"), encode_cursor("-1")):
        refused = client.get("/v1/audit", params={"cursor": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["errors"][0]["field"] == "cursor"
        refused = client.get("/v1/audit/checkpoints", params={"cursor": bad})
        assert refused.status_code == 422, bad
