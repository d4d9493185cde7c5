"""The client's retries through a proxy that loses answers or answers 429/503 in the gateway's
place: a keyed write is sent again with the same `Idempotency-Key` and written once; a write
without one is never sent twice once it has left."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from pgw_client import Gateway, Retry, paginate
from pgw_client.errors import ServiceUnavailableError
from pgw_client.models import LegalHoldIn, RecordIn
from tests.client.proxy import Fault, LossyProxy, lossy_proxy
from tests.gateway import PROFILE
from tests.server import LiveServer, free_port
from tests.tokens import make_token

FAST = Retry(attempts=3, backoff=0.01)
TOKEN = make_token(sub="svc-crm", scope="records:write records:read dsr:manage",
                   roles=["compliance_officer"])


@pytest.fixture
def proxy(live: LiveServer) -> Iterator[LossyProxy]:
    with lossy_proxy(live.url) as proxy:
        yield proxy


@pytest.fixture
def through_proxy(proxy: LossyProxy) -> Iterator[Gateway]:
    with Gateway(proxy.url, token=TOKEN, retry=FAST) as client:
        yield client


def _record(subject_id: str) -> RecordIn:
    return RecordIn(subject_id=subject_id, purpose="account_management",
                    record_type="customer_profile", data=dict(PROFILE))


def test_a_write_whose_answer_is_lost_is_sent_again_with_its_key_and_written_once(
        live: LiveServer, proxy: LossyProxy, through_proxy: Gateway) -> None:
    proxy.inject(Fault("POST", "/v1/records"))
    stored = through_proxy.records.create_record(_record("cust-r1"))
    tries = proxy.requests("POST", "/v1/records")
    assert len(tries) == 2
    assert tries[0].idempotency_key is not None
    assert tries[0].idempotency_key == tries[1].idempotency_key
    with Gateway(live.url, token=TOKEN) as direct:
        kept = list(paginate(direct.records.subject_records, "cust-r1",
                             purpose="account_management"))
    assert [view.record_id for view in kept] == [stored.record_id]

    # the next logical call gets a key of its own; a caller's own key is sent as given
    through_proxy.records.create_record(_record("cust-r2"))
    through_proxy.records.create_record(_record("cust-r3"), idempotency_key="crm-import-7")
    keys = [seen.idempotency_key for seen in proxy.requests("POST", "/v1/records")]
    assert keys[2] != keys[0]
    assert keys[3] == "crm-import-7"


def test_a_write_without_a_key_is_not_sent_again_once_it_has_left(
        live: LiveServer, proxy: LossyProxy, through_proxy: Gateway) -> None:
    proxy.inject(Fault("POST", "/v1/legal-holds"))
    with pytest.raises(httpx.RemoteProtocolError):
        through_proxy.dsr.place_hold(LegalHoldIn(subject_id="cust-h", reason="litigation 42"))
    assert len(proxy.requests("POST", "/v1/legal-holds")) == 1
    with Gateway(live.url, token=TOKEN) as direct:
        holds = direct.dsr.list_holds(subject_id="cust-h")
    assert [hold.reason for hold in holds.items] == ["litigation 42"]  # written once


def test_a_429_with_retry_after_is_waited_for_then_any_call_is_sent_again(
        proxy: LossyProxy, through_proxy: Gateway) -> None:
    proxy.inject(Fault("POST", "/v1/legal-holds", status=429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    hold = through_proxy.dsr.place_hold(LegalHoldIn(subject_id="cust-h", reason="audit 2026"))
    assert time.monotonic() - started >= 1.0
    assert hold.reason == "audit 2026"
    assert len(proxy.requests("POST", "/v1/legal-holds")) == 2


def test_a_503_is_retried_for_reads_and_keyed_writes_only(
        proxy: LossyProxy, through_proxy: Gateway) -> None:
    busy = {"Retry-After": "0"}
    proxy.inject(Fault("GET", "/v1/legal-holds", status=503, headers=busy))
    assert through_proxy.dsr.list_holds().items == []
    assert len(proxy.requests("GET", "/v1/legal-holds")) == 2

    proxy.inject(Fault("POST", "/v1/records", status=503, headers=busy))
    stored = through_proxy.records.create_record(_record("cust-r4"))
    assert stored.subject_id == "cust-r4"
    assert len(proxy.requests("POST", "/v1/records")) == 2

    proxy.inject(Fault("POST", "/v1/legal-holds", status=503, headers=busy))
    with pytest.raises(ServiceUnavailableError) as refused:
        through_proxy.dsr.place_hold(LegalHoldIn(subject_id="cust-h", reason="litigation 43"))
    assert refused.value.retry_after == "0"
    assert len(proxy.requests("POST", "/v1/legal-holds")) == 1


def test_a_503_busy_is_retried_even_for_an_unkeyed_write(
        proxy: LossyProxy, through_proxy: Gateway) -> None:
    """`busy`: the gateway refused the request before doing any of it (no thread came free),
    so sending it again cannot do it twice."""
    proxy.inject(Fault("POST", "/v1/legal-holds", status=503, headers={"Retry-After": "0"},
                       kind="busy"))
    hold = through_proxy.dsr.place_hold(LegalHoldIn(subject_id="cust-h", reason="audit 2027"))
    assert hold.reason == "audit 2027"
    assert len(proxy.requests("POST", "/v1/legal-holds")) == 2


def test_a_connection_that_cannot_be_made_is_tried_again_even_for_an_unkeyed_write() -> None:
    asked: list[int] = []

    def token() -> str:
        asked.append(1)
        return TOKEN

    with Gateway(f"http://127.0.0.1:{free_port()}", token=token, retry=FAST) as nowhere, \
            pytest.raises(httpx.ConnectError):
        nowhere.dsr.place_hold(LegalHoldIn(subject_id="cust-h", reason="litigation 44"))
    assert len(asked) == FAST.attempts  # a fresh token for each of the three tries
