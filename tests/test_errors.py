"""Every error is RFC 9457 problem JSON; request ids are accepted or made, and echoed."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

from app.config import Settings
from app.main import create_app
from tests.server import LiveServer
from tests.tokens import make_token


def assert_problem(response: object, status: int, type_: str) -> dict[str, Any]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert body["type"] == f"urn:pgw:problem:{type_}"
    assert body["status"] == status
    assert body["title"]
    return body


def test_404(live: LiveServer) -> None:
    assert_problem(live.client().get("/v1/nothing-here"), 404, "not-found")


def test_405(live: LiveServer) -> None:
    assert_problem(live.client().delete("/v1/audit"), 405, "method-not-allowed")


def test_422_names_the_field_and_reason(live: LiveServer) -> None:
    response = live.client(make_token()).get("/v1/audit", params={"outcome": "maybe"})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [{"field": "outcome", "in": "query",
                               "reason": "Input should be 'allowed', 'denied' or 'error'"}]


def test_413_by_content_length(make_settings: Callable[..., Settings],
                               start_server: Callable[..., LiveServer]) -> None:
    server = start_server(create_app(make_settings(max_body_bytes=2048)))
    response = server.client(make_token()).post("/v1/audit/checkpoints", content=b"x" * 4096)
    body = assert_problem(response, 413, "payload-too-large")
    assert "PGW_MAX_BODY_BYTES" in str(body["detail"])


def test_413_for_a_chunked_body_without_length(make_settings: Callable[..., Settings],
                                               start_server: Callable[..., LiveServer]) -> None:
    app = create_app(make_settings(max_body_bytes=2048))

    @app.post("/test/echo")
    async def echo(payload: dict[str, str]) -> dict[str, int]:
        return {"keys": len(payload)}

    server = start_server(app)

    def chunks() -> Iterator[bytes]:
        yield b'{"a": "'
        for _ in range(10):
            yield b"y" * 1024
        yield b'"}'

    response = server.client().post("/test/echo", content=chunks(),
                                    headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload-too-large")


def test_500_reveals_nothing(make_settings: Callable[..., Settings],
                             start_server: Callable[..., LiveServer]) -> None:
    app = create_app(make_settings())

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("customer phone 13812345678 in a message")

    server = start_server(app)
    response = server.client().get("/test/boom")
    body = assert_problem(response, 500, "internal-error")
    assert "13812345678" not in response.text
    assert body["detail"] == "the request could not be completed"
    assert response.headers["x-request-id"]


def test_request_id_is_generated_or_echoed(live: LiveServer) -> None:
    made = live.client().get("/healthz").headers["x-request-id"]
    assert len(made) == 32
    assert live.client().get("/healthz", headers={"X-Request-ID": "abc-1"}).headers[
        "x-request-id"] == "abc-1"
    # An unsafe id is replaced rather than echoed into headers and logs.
    replaced = live.client().get("/healthz", headers={"X-Request-ID": "a b<script>"})
    assert replaced.headers["x-request-id"] != "a b<script>"


def test_malformed_json_is_a_422_problem(live: LiveServer) -> None:
    response = live.client(make_token(scope="pii:scan")).post(
        "/v1/pii/scan", content=b'{"text": "unterminated', headers={"content-type":
                                                                    "application/json"})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["in"] == "body"


def test_huge_declared_length_is_refused_before_reading(live: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(b"POST /v1/audit/checkpoints HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 99999999999\r\n\r\n")
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413")


def test_nul_characters_are_refused_wherever_they_come(live: LiveServer) -> None:
    client = live.client(make_token(scope="consent:write records:read"))
    response = client.get("/v1/subjects/cust-1/records",
                          params={"purpose": "account_management", "after": "rec_\x00"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "query",
                                          "reason": "the query contains a NUL character"}]
    assert client.get("/v1/records/rec%00x", params={"purpose": "x"}).status_code == 422
    response = client.post("/v1/notices", json={"notice_id": "marketing", "version": 1,
                                                "language": "en", "text": "Hi\x00there"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body"
    assert error["reason"].endswith("text contains a NUL character")
