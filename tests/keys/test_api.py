from __future__ import annotations

from collections.abc import Callable

from app.keys.fields import encrypt_field
from app.runtime import Runtime
from tests.server import LiveServer
from tests.tokens import make_token

Drain = Callable[[], int]


def test_status_shows_versions_and_counts_never_material(runtime: Runtime,
                                                         live: LiveServer) -> None:
    assert runtime.keyring is not None
    with runtime.session_factory() as session:
        for subject in ("a", "b"):
            encrypt_field(session, runtime.keyring, subject_id=subject, field="f", value="v")
        session.commit()
    body = live.client(make_token(scope="keys:admin")).get("/v1/keys/status").json()
    assert body["provider"] == "local"
    assert body["cipher"] == "aes-256-gcm"
    assert body["kek"] == {"versions": [1], "current": 1, "min_accepted": 0}
    assert body["subject_keys"]["by_state"] == {"active": 2}
    key_hex = (runtime.settings.data_dir / "kek" / "kek-v1.key").read_bytes().hex()
    assert key_hex not in str(body)


def test_rotate_over_the_api(runtime: Runtime, live: LiveServer, drain: Drain) -> None:
    assert runtime.keyring is not None
    with runtime.session_factory() as session:
        encrypt_field(session, runtime.keyring, subject_id="a", field="f", value="v")
        session.commit()
    client = live.client(make_token(scope="keys:admin audit:read"))
    dek = client.post("/v1/keys/rotate", json={"kind": "dek", "subject_id": "a"})
    assert dek.status_code == 200
    assert dek.json() == {"kind": "dek", "subject_id": "a", "version": 2}
    kek = client.post("/v1/keys/rotate", json={"kind": "kek"})
    assert kek.status_code == 202
    assert kek.json()["target_version"] == 2
    assert kek.json()["status"] == "running"
    assert client.post("/v1/keys/rotate", json={"kind": "kek"}).json()["job_id"] == \
        kek.json()["job_id"]  # asked again while it runs: the same rotation and job
    drain()
    status = client.get("/v1/keys/status").json()
    assert status["rotations"][0]["status"] == "done"
    assert status["subject_keys"]["by_kek_version"] == {"2": 2}
    actions = [e["action"] for e in client.get("/v1/audit").json()["items"]]
    assert {"keys.dek_rotated", "keys.kek_rotation_started", "keys.kek_rotated"} <= set(actions)


def test_rotate_every_dek_over_the_api(runtime: Runtime, live: LiveServer,
                                       drain: Drain) -> None:
    assert runtime.keyring is not None
    with runtime.session_factory() as session:
        for subject in ("a", "b", "c"):
            encrypt_field(session, runtime.keyring, subject_id=subject, field="f", value="v")
        session.commit()
    client = live.client(make_token(scope="keys:admin"))
    started = client.post("/v1/keys/rotate", json={"kind": "dek", "all": True})
    assert started.status_code == 202
    assert started.json()["kind"] == "dek"
    assert started.json()["status"] == "running"
    drain()
    status = client.get("/v1/keys/status").json()
    assert status["subject_keys"]["by_state"] == {"active": 3, "retired": 3}
    assert [(r["kind"], r["status"], r["processed"], r["total"])
            for r in status["rotations"]] == [("dek", "done", 3, 3)]


def test_rotate_needs_a_subject_for_dek(live: LiveServer) -> None:
    response = live.client(make_token(scope="keys:admin")).post("/v1/keys/rotate",
                                                                json={"kind": "dek"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "subject_id"


def test_keys_api_needs_its_scope(live: LiveServer) -> None:
    assert live.client(make_token(scope="audit:read")).get("/v1/keys/status").status_code == 403
