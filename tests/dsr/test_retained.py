"""A field a law keeps after erasure that was encrypted under the subject's key is re-keyed to a
retention key of its own before the subject's key is destroyed, so it stays readable (by the
service, for the legal purpose) while everything else of the subject is gone."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.dsr.erasure import retention_subject
from app.jobs import worker
from app.keys.fields import decrypt_field
from app.main import create_app
from app.records.models import Record
from app.records.storage import record_context
from app.runtime import open_runtime
from tests.server import LiveServer
from tests.tokens import make_token

REPO = Path(__file__).resolve().parents[2]


def test_an_encrypted_field_kept_by_law_is_rekeyed_and_readable(
        tmp_path: Path, make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    types = policies / "record_types.yaml"
    text = types.read_text(encoding="utf-8")
    marker = '        description: {en: "Shipping address", zh: "配送地址"}\n' \
             '        protection: encrypt\n        purposes: [order_fulfilment]'
    assert marker in text
    types.write_text(text.replace(marker, marker.replace(
        "[order_fulfilment]", "[order_fulfilment, legal_compliance]")), encoding="utf-8")
    settings = make_settings(policy_dir=policies)
    live = start_server(create_app(settings))
    crm = live.client(make_token(sub="svc", scope="records:write dsr:submit dsr:verify",
                                 roles=["compliance_officer"]))
    written = crm.post("/v1/records", json={
        "subject_id": "cust-t", "purpose": "order_fulfilment", "record_type": "order",
        "data": {"order_number": "SO-3", "amount": "5.00",
                 "shipping_address": "天津市和平区南京路1号", "recipient_phone": "13912345678"}})
    assert written.status_code == 201, written.text
    record_id = written.json()["record_id"]
    assert crm.post("/v1/dsr", json={"subject_id": "cust-t", "type": "erasure",
                                     "jurisdiction": "PIPL",
                                     "verification": {"method": "app_login"}}).status_code == 202
    runtime = open_runtime(settings)
    try:
        worker.run(runtime, stop=threading.Event(), until_idle=True)
        assert runtime.keyring is not None
        with runtime.session_factory() as session:
            record = session.get(Record, record_id)
            assert record is not None
            assert set(record.data) == {"order_number", "amount", "shipping_address"}
            address = decrypt_field(session, runtime.keyring,
                                    subject_id=retention_subject("cust-t"),
                                    field="shipping_address", context=record_context(record_id),
                                    token=record.data["shipping_address"])
            assert address == '"天津市和平区南京路1号"'  # the stored JSON of the value
    finally:
        runtime.close()
