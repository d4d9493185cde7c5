"""Every event, caused through the API (or the service the job runs), delivered by the job worker
to receivers on loopback: each receiver gets exactly the events it chose, signed, with the
documented data and no personal data; a change that rolled back sends nothing; an unknown event
name is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.auth.guard import Caller
from app.consent import service as consent
from app.dsr import events as dsr_events
from app.dsr import service as dsr_service
from app.jobs import queue, worker
from app.jobs.models import Job
from app.retention import sweep
from app.runtime import Runtime
from app.webhooks import events
from app.webhooks.events import Event
from tests.gateway import PROFILE, Clients, grant_consent, write
from tests.webhooks.conftest import Network, Receiver

Receivers = Callable[..., Receiver]
Drain = Callable[[], int]
README = Path(__file__).resolve().parents[2] / "README.md"
ORDER = {"order_number": "SO-4411", "amount": "15.00",
         "shipping_address": "广州市天河区体育西路1号", "recipient_phone": "13912345678"}
# what a payload must never hold: every value a person gave in these tests, as written or
# normalised, and the free text of a rejection
# (not the amount: "15.00" can be part of a timestamp)
PERSONAL = [*PROFILE.values(), "13812345678", "11010519491231002X", ORDER["order_number"],
            ORDER["shipping_address"], ORDER["recipient_phone"], "ticket 88",
            "duplicate of an earlier request", "signup-v3"]
DAY = timedelta(days=1)


class Failed(RuntimeError):
    pass


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients("compliance_officer", sub="svc-crm",
                   scope="records:write records:read dsr:submit dsr:verify consent:write")


@pytest.fixture
def portal(clients: Clients) -> httpx.Client:
    """Files requests but cannot verify the person: its requests wait `unverified`."""
    return clients(sub="svc-portal", scope="dsr:submit")


def subscribe(admin: httpx.Client, receiver: Receiver, chosen: list[str]) -> str:
    """Register the receiver for `chosen`; returns its signing secret."""
    registered = admin.post("/v1/webhooks", json={"url": receiver.url, "events": chosen})
    assert registered.status_code == 201, registered.text
    assert registered.json()["events"] == sorted(set(chosen))
    return str(registered.json()["secret"])


def received(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """The events the receiver got, each checked: signature, headers, envelope, the documented
    data keys and no personal data."""
    got = []
    for path, headers, body in receiver.requests:
        assert path == "/hooks"
        timestamp, mac = headers["pgw-signature"].removeprefix("t=").split(",v1=")
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                            hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, expected), "bad signature"
        event = json.loads(body)
        assert set(event) == {"id", "type", "version", "occurred_at", "data"}
        assert (headers["pgw-event-id"], headers["pgw-event-type"]) == (event["id"],
                                                                        event["type"])
        assert event["version"] == events.VERSION
        kind = Event(event["type"])
        assert set(event["data"]) == set(events.DATA[kind]), kind
        for item in event["data"].get("records", []) if kind in events.RECORD_ITEM else []:
            assert set(item) == set(events.RECORD_ITEM[kind]), kind
        text = body.decode().lower()
        for value in PERSONAL:
            assert value.lower() not in text, (kind, value)
        got.append(event)
    return got


def types(got: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in got]


def submit(client: httpx.Client, subject_id: str, type: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/dsr", json={
        "subject_id": subject_id, "type": type, "jurisdiction": "GDPR",
        "verification": {"method": "logged_in_session", "reference": "ticket 88"}, **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


# -- choosing events ---------------------------------------------------------------------------

@pytest.mark.parametrize("chosen", [["dsr.recieved"], ["consent.given", "record.read"],
                                    ["nope.*"], ["dsr*"], ["DSR.RECEIVED"], [""]])
def test_unknown_event_names_are_refused_naming_them(admin: httpx.Client,
                                                     chosen: list[str]) -> None:
    refused = admin.post("/v1/webhooks", json={"url": "https://hooks.example.cn/pgw",
                                               "events": chosen})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    bad = next(name for name in chosen if name not in events.PATTERNS)
    assert f"unknown event {bad!r}" in problem["detail"]
    assert problem["errors"][0]["field"] == f"events.{chosen.index(bad)}"
    assert admin.get("/v1/webhooks").json()["items"] == []


def test_names_families_and_all_are_accepted_and_listed(admin: httpx.Client) -> None:
    for chosen in (["consent.given", "dsr.overdue"], ["dsr.*", "record.deleted"], ["*"]):
        registered = admin.post("/v1/webhooks", json={"url": "https://hooks.example.cn/pgw",
                                                      "events": chosen})
        assert registered.status_code == 201, registered.text
    assert [w["events"] for w in admin.get("/v1/webhooks").json()["items"]] == [
        ["consent.given", "dsr.overdue"], ["dsr.*", "record.deleted"], ["*"]]


def test_the_openapi_schema_lists_the_registry(live: Any) -> None:
    schema = live.client().get("/openapi.json").json()["components"]["schemas"]["WebhookIn"]
    assert schema["properties"]["events"]["items"]["enum"] == list(events.PATTERNS)
    assert {e.value for e in Event} <= set(events.PATTERNS)


# -- consent -----------------------------------------------------------------------------------

def test_consent_given_and_withdrawn_reach_only_their_subscribers(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, receivers: Receivers,
        network: Network) -> None:
    consents, requests, everything = receivers(), receivers(), receivers()
    consent_secret = subscribe(admin, consents, ["consent.given", "consent.withdrawn"])
    subscribe(admin, requests, ["dsr.*"])
    all_secret = subscribe(admin, everything, ["*"])

    grant_consent(admin, "cust-ev", "marketing_email")
    withdrawn = crm.post("/v1/subjects/cust-ev/consents/marketing_email/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    drain()

    given, gone = received(consents, consent_secret)
    assert given["type"] == "consent.given"
    assert given["data"] == {"consent_event_id": given["data"]["consent_event_id"],
                             "subject_id": "cust-ev", "purpose": "marketing_email",
                             "notice_id": "marketing", "notice_version": 1, "channel": "web"}
    assert gone["type"] == "consent.withdrawn"
    assert gone["data"] == {"consent_event_id": withdrawn.json()["event_id"],
                            "subject_id": "cust-ev", "purpose": "marketing_email",
                            "channel": "api"}
    assert requests.requests == []
    assert types(received(everything, all_secret)) == ["consent.given", "consent.withdrawn"]
    assert given["id"] != gone["id"]
    assert network.refused == []


# -- data-subject requests ---------------------------------------------------------------------

def test_requests_received_completed_rejected_restricted_and_objected(
        admin: httpx.Client, crm: httpx.Client, portal: httpx.Client, drain: Drain,
        receivers: Receivers) -> None:
    dsr_receiver, subject_receiver = receivers(), receivers()
    dsr_secret = subscribe(admin, dsr_receiver, ["dsr.*"])
    subject_secret = subscribe(admin, subject_receiver,
                               ["subject.restricted", "subject.objected"])
    profile = write(crm, subject_id="cust-ev")["record_id"]
    order = write(crm, subject_id="cust-ev", purpose="order_fulfilment", record_type="order",
                  data=dict(ORDER))["record_id"]
    grant_consent(admin, "cust-ev", "marketing_email")

    restriction = submit(crm, "cust-ev", "restriction")  # verified at once: received
    drain()
    objection = submit(portal, "cust-ev", "objection")  # waits unverified: no event yet
    drain()
    assert types(received(dsr_receiver, dsr_secret)) == ["dsr.received", "dsr.completed"]
    verified = crm.post(f"/v1/dsr/{objection['id']}/verify",
                        json={"method": "logged_in_session"})
    assert verified.status_code == 200, verified.text
    drain()
    rejected = submit(portal, "cust-ev", "access")
    refusal = admin.post(f"/v1/dsr/{rejected['id']}/reject",
                         json={"reason": "duplicate of an earlier request"})
    assert refusal.status_code == 200, refusal.text
    drain()

    got = received(dsr_receiver, dsr_secret)
    assert [(e["type"], e["data"]["dsr_id"], e["data"]["status"]) for e in got] == [
        ("dsr.received", restriction["id"], "received"),
        ("dsr.completed", restriction["id"], "completed"),
        ("dsr.received", objection["id"], "received"),
        ("dsr.completed", objection["id"], "completed"),
        ("dsr.rejected", rejected["id"], "rejected")]
    assert got[0]["data"] == {"dsr_id": restriction["id"], "subject_id": "cust-ev",
                              "type": "restriction", "jurisdiction": "GDPR",
                              "status": "received", "due_at": got[0]["data"]["due_at"]}
    assert datetime.fromisoformat(got[0]["data"]["due_at"]) == \
        datetime.fromisoformat(restriction["due_at"])

    restricted, objected = received(subject_receiver, subject_secret)
    assert restricted["type"] == "subject.restricted"
    assert restricted["data"] == {"subject_id": "cust-ev", "dsr_id": restriction["id"],
                                  "records": sorted([profile, order])}
    assert objected["type"] == "subject.objected"
    # everything was restricted already: the objection withdrew the consent only
    assert objected["data"] == {"subject_id": "cust-ev", "dsr_id": objection["id"],
                                "consents_withdrawn": ["marketing_email"], "records": []}


def test_an_erasure_sends_subject_erased_and_dsr_completed(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, receivers: Receivers) -> None:
    receiver, bystander = receivers(), receivers()
    secret = subscribe(admin, receiver, ["subject.erased", "dsr.completed"])
    subscribe(admin, bystander, ["record.deleted", "consent.withdrawn"])
    write(crm, subject_id="cust-er")
    erasure = submit(crm, "cust-er", "erasure")
    drain()
    erased, completed = received(receiver, secret)
    assert (erased["type"], erased["data"]) == ("subject.erased", {"subject_id": "cust-er",
                                                                   "dsr_id": erasure["id"]})
    assert (completed["type"], completed["data"]["type"], completed["data"]["status"]) == (
        "dsr.completed", "erasure", "completed")
    assert bystander.requests == []  # an erasure's own deletions are told by subject.erased


def test_an_extension_and_a_request_that_gave_up_are_announced(
        admin: httpx.Client, crm: httpx.Client, portal: httpx.Client, drain: Drain,
        receivers: Receivers, runtime: Runtime) -> None:
    receiver = receivers()
    secret = subscribe(admin, receiver, ["dsr.extended", "dsr.failed"])
    waiting = submit(portal, "cust-xf", "access")  # unverified: open, so it can be extended
    extended = admin.post(f"/v1/dsr/{waiting['id']}/extend",
                          json={"reason": "ticket 88"})
    assert extended.status_code == 200, extended.text
    write(crm, subject_id="cust-xf")
    erasure = submit(crm, "cust-xf", "erasure")
    signer, runtime.receipt_signer = runtime.receipt_signer, None  # certificates cannot be signed
    try:
        with runtime.transaction() as session:
            session.execute(update(Job).where(Job.kind == "dsr.run").values(max_attempts=1))
        drain()
    finally:
        runtime.receipt_signer = signer

    got = received(receiver, secret)
    assert [(e["type"], e["data"]["dsr_id"], e["data"]["status"]) for e in got] == [
        ("dsr.extended", waiting["id"], "unverified"),
        ("dsr.failed", erasure["id"], "failed")]
    assert got[0]["data"]["due_at"] == extended.json()["due_at"]


def test_an_overdue_request_is_announced_once(
        admin: httpx.Client, crm: httpx.Client, portal: httpx.Client, drain: Drain,
        receivers: Receivers, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = receivers()
    secret = subscribe(admin, receiver, ["dsr.overdue"])
    late = submit(portal, "cust-od", "access")  # unverified: it stays open
    done = submit(crm, "cust-od", "access")
    drain()
    assert receiver.requests == []

    later = datetime.now(UTC) + 40 * DAY  # past GDPR's month
    monkeypatch.setattr("app.dsr.events.utcnow", lambda: later)
    monkeypatch.setattr("app.dsr.service.utcnow", lambda: later)
    for _ in range(3):  # the deadline check runs every hour: the event goes once
        with runtime.transaction() as session:
            queue.enqueue(session, "dsr_deadlines")
        assert worker.run_once(runtime, worker="test-worker",
                               kinds=("dsr_deadlines",)) == "done"
        drain()

    [overdue] = received(receiver, secret)
    assert overdue["type"] == "dsr.overdue"
    assert overdue["data"]["dsr_id"] == late["id"]  # not the completed one
    assert overdue["data"]["status"] == "unverified"
    timeline = admin.get(f"/v1/dsr/{late['id']}").json()["timeline"]
    assert [e["event"] for e in timeline].count("overdue") == 1
    assert done["id"] != late["id"]


def test_two_deadline_checks_at_once_announce_a_request_once(
        admin: httpx.Client, portal: httpx.Client, drain: Drain, receivers: Receivers,
        runtime: Runtime) -> None:
    """The second check waits for the first one's lock on the request, then sees its mark."""
    receiver = receivers()
    secret = subscribe(admin, receiver, ["dsr.overdue"])
    late = submit(portal, "cust-od2", "access")
    later = datetime.now(UTC) + 40 * DAY
    first_in, release = threading.Event(), threading.Event()
    announced: list[list[str]] = []

    def check(hold: bool) -> None:
        with runtime.transaction() as session:
            announced.append(dsr_events.announce_overdue(session, actor="test", now=later))
            if hold:
                first_in.set()
                release.wait(10)

    first = threading.Thread(target=check, args=(True,))
    first.start()
    assert first_in.wait(10)
    second = threading.Thread(target=check, args=(False,))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the first check's transaction
    release.set()
    first.join(10)
    second.join(10)
    assert announced == [[late["id"]], []]
    drain()
    assert [e["data"]["dsr_id"] for e in received(receiver, secret)] == [late["id"]]


# -- records -----------------------------------------------------------------------------------

def test_records_deleted_and_deidentified_by_retention_and_deleted_through_the_api(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, receivers: Receivers,
        runtime: Runtime) -> None:
    receiver, deidentified_only = receivers(), receivers()
    secret = subscribe(admin, receiver, ["record.*"])
    only_secret = subscribe(admin, deidentified_only, ["record.deidentified"])
    profile = write(crm, subject_id="cust-rt")["record_id"]
    order = write(crm, subject_id="cust-rt", purpose="order_fulfilment", record_type="order",
                  data=dict(ORDER))["record_id"]
    doomed = write(crm, subject_id="cust-rt2")["record_id"]
    assert crm.delete(f"/v1/records/{doomed}").status_code == 204
    drain()

    now = datetime.now(UTC)
    sweep.run(runtime.transaction, runtime.policy, now=now + 1096 * DAY)  # profile: deleted
    sweep.run(runtime.transaction, runtime.policy, now=now + 1826 * DAY)  # order: de-identified
    drain()

    by_api, by_retention, deidentified = received(receiver, secret)
    assert (by_api["type"], by_api["data"]) == ("record.deleted", {"reason": "api", "records": [
        {"record_id": doomed, "record_type": "customer_profile",
         "purpose": "account_management", "subject_id": "cust-rt2"}]})
    assert (by_retention["type"], by_retention["data"]) == ("record.deleted", {
        "reason": "retention", "records": [
            {"record_id": profile, "record_type": "customer_profile",
             "purpose": "account_management", "subject_id": "cust-rt"}]})
    # a de-identified record lives on unlinked: its event does not link it again
    assert (deidentified["type"], deidentified["data"]) == ("record.deidentified", {
        "reason": "retention", "records": [
            {"record_id": order, "record_type": "order", "purpose": "order_fulfilment"}]})
    assert "cust-rt" not in json.dumps(deidentified)
    assert types(received(deidentified_only, only_secret)) == ["record.deidentified"]


# -- rolled back -------------------------------------------------------------------------------

def test_a_change_that_rolled_back_sends_nothing(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, receivers: Receivers,
        runtime: Runtime) -> None:
    receiver = receivers()
    secret = subscribe(admin, receiver, ["*"])
    pending = submit(crm, "cust-rb", "erasure", jurisdiction="PIPL")
    assert admin.post("/v1/legal-holds", json={"subject_id": "cust-rb",
                                               "reason": "litigation"}).status_code == 201
    drain()  # on hold: the request stays open
    receiver.requests.clear()

    def change(*, then_fail: bool) -> None:
        caller = Caller.system("test")
        with runtime.transaction() as session:
            consent.record_withdrawal(session, runtime.policy, caller=caller,
                                      subject_id="cust-rb", purpose="marketing_email")
            dsr_service.reject(session, caller=caller, dsr_id=pending["id"], reason="test")
            if then_fail:  # something later in the same transaction failed
                raise Failed

    with pytest.raises(Failed):
        change(then_fail=True)
    drain()
    assert receiver.requests == []
    assert admin.get(f"/v1/dsr/{pending['id']}").json()["status"] == "on_hold"

    # the same changes committed are sent: the receiver above could have heard them
    change(then_fail=False)
    drain()
    assert types(received(receiver, secret)) == ["consent.withdrawn", "dsr.rejected"]


def test_publishing_an_undocumented_key_is_refused(runtime: Runtime) -> None:
    from app.webhooks import outbox

    with pytest.raises(ValueError, match="undocumented keys"), \
            runtime.transaction() as session:
        outbox.publish(session, Event.CONSENT_GIVEN, {"subject_id": "s", "email": "a@b.cn"})
    with pytest.raises(ValueError, match="records may hold only"), \
            runtime.transaction() as session:
        outbox.publish(session, Event.RECORD_DEIDENTIFIED, {
            "reason": "retention", "records": [{"record_id": "r", "subject_id": "s"}]})


# -- documentation -----------------------------------------------------------------------------

def test_the_readme_lists_every_event_with_its_data() -> None:
    text = README.read_text(encoding="utf-8")
    for event in Event:
        row = re.search(rf"^\| `{re.escape(event.value)}` \|(.*)$", text, re.MULTILINE)
        assert row is not None, f"README has no row for {event}"
        documented = set(re.findall(r"`([a-z_]+)`", row.group(1)))
        fields = set(events.DATA[event]) | set(events.RECORD_ITEM.get(event, ()))
        assert fields <= documented, (event, fields - documented)
