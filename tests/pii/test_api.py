"""The PII API over HTTP: contract, errors and auditing."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.server import LiveServer
from tests.tokens import make_token

TEXT = "客户张伟，手机１３８１２３４５６７８，邮箱 zhang.wei at example dot com"


@pytest.fixture
def client(live: LiveServer) -> httpx.Client:
    return live.client(make_token(scope="pii:scan audit:read"))


def test_scan_returns_offsets_into_the_text_as_sent(client: httpx.Client) -> None:
    body = client.post("/v1/pii/scan", json={"text": TEXT}).json()
    assert body["language"] == "zh"
    spans = {(e["type"], TEXT[e["start"]:e["end"]]) for e in body["entities"]}
    assert spans == {("PERSON", "张伟"), ("PHONE_NUMBER", "１３８１２３４５６７８"),
                     ("EMAIL_ADDRESS", "zhang.wei at example dot com")}
    assert all(set(e) == {"type", "start", "end", "score", "recognizer"}
               for e in body["entities"])


def test_scan_filters_by_entity_and_threshold(client: httpx.Client) -> None:
    body = client.post("/v1/pii/scan", json={"text": TEXT, "entities": ["PHONE_NUMBER"]}).json()
    assert [e["type"] for e in body["entities"]] == ["PHONE_NUMBER"]
    strict = client.post("/v1/pii/scan", json={"text": TEXT, "score_threshold": 0.95}).json()
    assert {e["type"] for e in strict["entities"]} == {"PHONE_NUMBER", "EMAIL_ADDRESS"}


def test_empty_text_has_no_entities(client: httpx.Client) -> None:
    assert client.post("/v1/pii/scan", json={"text": ""}).json()["entities"] == []


def test_batch_keeps_order(client: httpx.Client) -> None:
    items = [{"text": "call 13812345678"}, {"text": "nothing here"},
             {"text": "Mail bob@example.com", "language": "en"}]
    results = client.post("/v1/pii/scan/batch", json={"items": items}).json()["results"]
    assert [[e["type"] for e in r["entities"]] for r in results] == [
        ["PHONE_NUMBER"], [], ["EMAIL_ADDRESS"]]


def test_batch_size_is_bounded(client: httpx.Client) -> None:
    response = client.post("/v1/pii/scan/batch", json={"items": [{"text": "x"}] * 1001})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "items"


def test_redact_with_operators(client: httpx.Client) -> None:
    body = client.post("/v1/pii/redact", json={
        "text": TEXT, "operators": {"DEFAULT": {"type": "replace"},
                                    "PHONE_NUMBER": {"type": "mask"}}}).json()
    assert body["text"] == "客户<PERSON>，手机138****5678，邮箱 <EMAIL_ADDRESS>"
    phone = next(e for e in body["entities"] if e["type"] == "PHONE_NUMBER")
    assert body["text"][phone["output_start"]:phone["output_end"]] == "138****5678"
    assert phone["operator"] == "mask"


@pytest.mark.parametrize(("payload", "field"), [
    ({"text": "x", "language": "fr"}, "language"),
    ({"text": "x", "entities": ["NOT_A_TYPE"]}, "entities"),
    ({"text": "x", "surprise": 1}, "surprise"),
    ({"text": "x", "operators": {"PHONE_NUMBER": {"type": "scramble"}}}, "operators"),
    ({"text": "x", "operators": {"NOPE": {"type": "mask"}}}, "operators.NOPE"),
    ({"text": "x", "operators": {"DEFAULT": {"type": "mask", "masking_char": "##"}}},
     "operators.DEFAULT.masking_char"),
])
def test_bad_input_is_422_naming_the_field(client: httpx.Client, payload: dict[str, object],
                                           field: str) -> None:
    text = "call 13812345678" if "operators" in payload else payload["text"]
    response = client.post("/v1/pii/redact", json={**payload, "text": text})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_unknown_language_lists_the_supported_ones(client: httpx.Client) -> None:
    body = client.post("/v1/pii/scan", json={"text": "x", "language": "fr"}).json()
    assert body["errors"][0]["field"] == "language"
    assert body["errors"][0]["reason"] == "Input should be 'auto', 'en' or 'zh'"


def test_types_are_not_coerced(client: httpx.Client) -> None:
    response = client.post("/v1/pii/scan", json={"text": "x", "score_threshold": False})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "score_threshold"


def test_text_over_the_limit_is_413(make_settings: Callable[..., Settings],
                                    start_server: Callable[..., LiveServer]) -> None:
    server = start_server(create_app(make_settings(pii_max_chars=50)))
    response = server.client(make_token(scope="pii:scan")).post("/v1/pii/scan",
                                                                json={"text": "x" * 51})
    assert response.status_code == 413
    assert "50" in response.json()["detail"]
    assert "PGW_PII_MAX_CHARS" in response.json()["detail"]


def test_scan_needs_the_scope(live: LiveServer) -> None:
    response = live.client(make_token(scope="audit:read")).post("/v1/pii/scan",
                                                                json={"text": "x"})
    assert response.status_code == 403


def test_audit_has_types_and_counts_never_the_text(client: httpx.Client) -> None:
    client.post("/v1/pii/scan", json={"text": TEXT})
    entry = client.get("/v1/audit", params={"action": "pii.scanned"}).json()["items"][0]
    assert entry["details"] == {"language": "zh", "chars": len(TEXT),
                                "found": {"PERSON": 1, "PHONE_NUMBER": 1, "EMAIL_ADDRESS": 1}}
    exported = client.get("/v1/audit/export").text
    for secret in ("张伟", "１３８", "13812345678", "zhang.wei"):
        assert secret not in exported
