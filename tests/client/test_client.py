"""The Python client against a live gateway: records, consent, a data-subject request carried
out by the worker, problems raised as their exception classes, pagination, the async client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from pgw_client import AsyncGateway, Gateway, apaginate, paginate
from pgw_client.errors import (
    ForbiddenError,
    InsufficientScopeError,
    NotFoundError,
    NotReadyError,
    PurposeNotAllowedError,
    ValidationError,
)
from pgw_client.models import (
    ConsentIn,
    DsrIn,
    DsrStatus,
    EvidenceIn,
    RecordIn,
    VerificationIn,
)
from tests.client.conftest import MakeGateway
from tests.gateway import PROFILE, audit_entries
from tests.server import LiveServer
from tests.tokens import make_token

Drain = Callable[[], int]


def _record(subject_id: str = "cust-1", **data: str) -> RecordIn:
    return RecordIn(subject_id=subject_id, purpose="account_management",
                    record_type="customer_profile", data={**PROFILE, **data})


def test_a_record_written_and_read_back_masked_for_support(gateway: MakeGateway) -> None:
    crm = gateway("compliance_officer")
    stored = crm.records.create_record(_record())
    assert stored.record_id.startswith("rec_")
    assert stored.subject_id == "cust-1"
    support = gateway("support_agent", sub="agent-7")
    view = support.records.read_record(stored.record_id, purpose="customer_support")
    assert view.record_id == stored.record_id
    assert view.data["phone"] == "138****5678"
    assert view.access["phone"]["decision"] == "masked"
    assert isinstance(view.created_at, datetime)
    assert view.created_at.tzinfo is not None


def test_consent_granted_listed_and_withdrawn(gateway: MakeGateway, admin: httpx.Client) -> None:
    crm = gateway()
    receipt = crm.consent.grant(ConsentIn(
        subject_id="cust-2", purpose="marketing_email", notice_id="marketing", notice_version=1,
        channel="web", captured_at=datetime(2026, 11, 1, 10, tzinfo=UTC),
        evidence=EvidenceIn(form_id="signup-v3"), jurisdiction="PIPL"))
    assert (receipt.subject_id, receipt.purpose, receipt.state) == (
        "cust-2", "marketing_email", "granted")
    state = crm.consent.consents("cust-2")
    assert state.purposes["marketing_email"].allowed is True
    withdrawn = crm.consent.withdraw("cust-2", "marketing_email")
    assert withdrawn.state == "withdrawn"
    assert crm.consent.consents("cust-2").purposes["marketing_email"].allowed is False
    assert [e.event for e in crm.consent.consents("cust-2").history] == ["granted", "withdrawn"]


def test_an_access_request_runs_to_completion_with_the_worker(
        gateway: MakeGateway, drain: Drain) -> None:
    crm = gateway("compliance_officer")
    crm.records.create_record(_record("cust-9"))
    submitted = crm.dsr.submit(DsrIn(subject_id="cust-9", type="access", jurisdiction="PIPL",
                                     verification=VerificationIn(method="logged_in_session")))
    assert submitted.status == DsrStatus.RECEIVED
    with pytest.raises(NotReadyError) as early:
        crm.dsr.get_export(submitted.id)
    assert early.value.status == 409
    drain()
    done = crm.dsr.get_request(submitted.id)
    assert done.status == DsrStatus.COMPLETED
    assert done.result == {"records": 1, "consent_events": 0, "reads": 0}
    export = crm.dsr.get_export(submitted.id)
    assert export["records"][0]["data"]["name"] == "张伟"
    page = crm.dsr.get_export(submitted.id, format="html")
    assert isinstance(page, str)
    assert "张伟" in page
    dpo = gateway(sub="dpo", scope="dsr:manage")
    listed = list(paginate(dpo.dsr.list_requests, status=DsrStatus.COMPLETED))
    assert [dsr.id for dsr in listed] == [submitted.id]


def test_problems_are_raised_as_their_classes_with_type_and_field_errors(
        gateway: MakeGateway, admin: httpx.Client) -> None:
    crm = gateway("compliance_officer")
    with pytest.raises(PurposeNotAllowedError) as refused:
        crm.records.create_record(RecordIn(subject_id="cust-1", purpose="marketing_email",
                                           record_type="order", data={}))
    assert isinstance(refused.value, ForbiddenError)  # purpose-not-allowed refines forbidden
    assert refused.value.type == "urn:pgw:problem:purpose-not-allowed"
    assert (refused.value.status, refused.value.title) == (403, "Purpose not allowed")
    assert refused.value.request_id
    [audited] = audit_entries(admin, "record.write_refused")
    assert audited["request_id"] == refused.value.request_id

    with pytest.raises(ValidationError) as invalid:
        crm.records.create_record(_record(email="not-an-address"))
    assert [(e.field, e.reason) for e in invalid.value.errors] == [
        ("data.email", "not an e-mail address")]

    with pytest.raises(NotFoundError):
        crm.records.read_record("rec_missing", purpose="customer_support")
    reader = gateway(scope="records:read")
    with pytest.raises(InsufficientScopeError) as scope:
        reader.records.create_record(_record())
    assert scope.value.status == 403
    assert "records:write" in (scope.value.detail or "")


def test_pagination_follows_next_over_several_pages(live: LiveServer,
                                                    gateway: MakeGateway) -> None:
    crm = gateway("compliance_officer")
    written = [crm.records.create_record(_record("cust-5")).record_id for _ in range(5)]
    pages: list[httpx.Request] = []
    counting = httpx.Client(base_url=live.url, event_hooks={"request": [pages.append]})
    with Gateway(token=make_token(sub="svc-crm", scope="records:read",
                                  roles=["compliance_officer"]), http=counting) as reader:
        listed = list(paginate(reader.records.subject_records, "cust-5",
                               purpose="account_management", limit=2))
    assert sorted(view.record_id for view in listed) == sorted(written)
    assert len(listed) == 5
    assert len(pages) == 3  # 2 + 2 + 1
    assert [request.url.params.get("cursor") is None for request in pages] == [
        True, False, False]


def test_the_token_may_be_a_callable_asked_for_each_request(live: LiveServer) -> None:
    issued: list[str] = []

    def fresh() -> str:
        issued.append(make_token(sub=f"svc-{len(issued)}", scope="records:write",
                                 roles=["compliance_officer"]))
        return issued[-1]

    with Gateway(live.url, token=fresh) as crm:
        crm.records.create_record(_record("cust-6"))
        crm.records.create_record(_record("cust-6"))
    assert len(issued) == 2


def test_the_async_client_writes_reads_and_pages(live: LiveServer, drain: Drain) -> None:
    token = make_token(sub="svc-crm", scope="records:write records:read",
                       roles=["compliance_officer"])
    lock = threading.Lock()
    calls: list[str] = []

    async def token_source() -> str:
        with lock:
            calls.append(token)
        return token

    async def run() -> tuple[list[str], str, list[str]]:
        async with AsyncGateway(live.url, token=token_source) as crm:
            stored = await asyncio.gather(*[crm.records.create_record(_record("cust-7"))
                                            for _ in range(3)])
            view = await crm.records.read_record(stored[0].record_id,
                                                 purpose="customer_support")
            listed = [item.record_id async for item in apaginate(
                crm.records.subject_records, "cust-7", purpose="account_management",
                limit=2)]
            return [s.record_id for s in stored], view.data["phone"], listed

    written, phone, listed = asyncio.run(run())
    assert phone == "+8613812345678"  # a compliance officer sees it in clear, normalised
    assert sorted(listed) == sorted(written)
    assert len(set(written)) == 3
    assert len(calls) == 3 + 1 + 2
