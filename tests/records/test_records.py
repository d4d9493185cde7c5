"""The records API end to end over HTTP: writes, minimisation, consent, free text, reads by
role, rectification, deletion, idempotency, lookup and object-level authorisation."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, text

from app.auth.guard import Caller
from app.keys import shred
from app.keys.fields import token_version
from app.runtime import Runtime
from tests.gateway import (
    PROFILE,
    Clients,
    audit_entries,
    grant_consent,
    make_record,
    read,
    write,
)

NOTE = ("Customer called from 13912345678 about order 88231; please e-mail "
        "li.na@example.com when the parcel ships.")


def test_write_protects_every_field_and_computes_retention(clients: Clients,
                                                           admin: httpx.Client) -> None:
    response = clients().post("/v1/records", json=make_record())
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/records/{body['record_id']}"
    assert set(body["data"]) == set(PROFILE)
    assert all(value.startswith("pgw1.") for value in body["data"].values())
    assert body["findings"] == []
    assert body["legal_basis"] == "contract"
    due = datetime.fromisoformat(body["retention_until"])
    assert abs(due - (datetime.now(UTC) + timedelta(days=1095))) < timedelta(minutes=5)
    [entry] = audit_entries(admin, "record.created")
    assert entry["resource"] == f"record:{body['record_id']}"
    assert entry["details"]["fields"] == sorted(PROFILE)
    assert "张伟" not in str(entry)


def test_unknown_type_field_and_bad_values_name_the_field(clients: Clients) -> None:
    client = clients()
    response = client.post("/v1/records", json=make_record(record_type="invoice"))
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "record_type",
                                          "reason": "unknown record type 'invoice'"}]
    response = client.post("/v1/records", json=make_record(data={**PROFILE, "shoe_size": 42}))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "data.shoe_size", "reason": "customer_profile has no field 'shoe_size'"}]
    response = client.post("/v1/records", json=make_record(
        data={**PROFILE, "email": "not-an-address", "cn_resident_id": "110105194912310021"}))
    assert response.status_code == 422
    assert {(e["field"], e["reason"]) for e in response.json()["errors"]} == {
        ("data.email", "not an e-mail address"),
        ("data.cn_resident_id",
         "not a valid resident ID (check character, region or birth date)")}


def test_purpose_not_allowed_for_the_record_type(clients: Clients) -> None:
    response = clients().post("/v1/records", json=make_record(purpose="marketing_email",
                                                              record_type="order",
                                                              data={}))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:pgw:problem:purpose-not-allowed"


def test_minimisation_rejects_or_drops(clients: Clients) -> None:
    client = clients()
    response = client.post("/v1/records", json=make_record(purpose="order_fulfilment"))
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "data.cn_resident_id",
        "reason": "field cn_resident_id is not collected for purpose order_fulfilment"}
    ticket = write(client, purpose="customer_support", record_type="support_ticket",
                   data={"subject": "Parcel late", "body": "Where is it?", "channel": "web",
                         "browser_fingerprint": "abc123"})
    assert ticket["dropped"] == ["browser_fingerprint"]
    assert "browser_fingerprint" not in ticket["data"]


def test_consent_is_required_and_its_denial_is_actionable(clients: Clients,
                                                          admin: httpx.Client) -> None:
    client = clients()
    prefs = {"channels": "email", "interests": "running shoes"}
    response = client.post("/v1/records", json=make_record(
        purpose="marketing_email", record_type="marketing_preferences", data=prefs))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:pgw:problem:consent-required"
    [denied] = audit_entries(admin, "record.write_refused")
    assert denied["outcome"] == "denied"
    assert denied["details"]["reason"] == "consent-required"
    assert audit_entries(admin, "record.created") == []

    grant_consent(admin, "cust-1", "marketing_email")
    written = write(client, purpose="marketing_email", record_type="marketing_preferences",
                    data=prefs)
    assert written["legal_basis"] == "consent"
    assert admin.post("/v1/subjects/cust-1/consents/marketing_email/withdraw").status_code == 200
    response = client.post("/v1/records", json=make_record(
        purpose="marketing_email", record_type="marketing_preferences", data=prefs))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:pgw:problem:consent-withdrawn"


def test_withdrawn_consent_denies_reads_with_the_reason(clients: Clients,
                                                        admin: httpx.Client) -> None:
    grant_consent(admin, "cust-1", "marketing_email")
    written = write(clients(), purpose="marketing_email", record_type="marketing_preferences",
                    data={"channels": "email", "interests": "tea"})
    analyst = clients("marketing_analyst", sub="analyst-1")
    before = read(analyst, written["record_id"], "marketing_email")
    assert before["data"] == {"channels": "email", "interests": "tea"}
    assert admin.post("/v1/subjects/cust-1/consents/marketing_email/withdraw").status_code == 200
    after = read(analyst, written["record_id"], "marketing_email")
    assert after["data"] == {}
    assert after["access"]["channels"] == {"decision": "denied", "reason": "consent-withdrawn"}


def test_each_role_sees_what_the_default_policy_gives_it(clients: Clients) -> None:
    record_id = write(clients())["record_id"]
    officer = read(clients("compliance_officer", sub="officer"), record_id, "account_management")
    assert officer["data"] == {"name": "张伟", "email": "Zhang.Wei@Example.cn",
                               "phone": "+8613812345678", "cn_resident_id": "11010519491231002X",
                               "birth_date": "1949-12-31"}
    agent = read(clients("support_agent", sub="agent"), record_id, "customer_support")
    assert agent["data"] == {"name": "张*", "email": "Z***@Example.cn", "phone": "138****5678"}
    assert agent["access"]["cn_resident_id"] == {
        "decision": "denied", "reason": "not used for purpose customer_support"}
    assert agent["access"]["email"]["decision"] == "masked"
    fulfilment = read(clients("fulfilment_operator", sub="warehouse"), record_id,
                      "order_fulfilment")
    assert fulfilment["data"] == {"name": "张*", "email": "Zhang.Wei@Example.cn",
                                  "phone": "+8613812345678"}
    fraud = read(clients("fraud_analyst", sub="risk"), record_id, "fraud_prevention")
    assert set(fraud["data"]) == {"cn_resident_id", "birth_date"}
    assert fraud["data"]["cn_resident_id"] != "11010519491231002X"  # masked
    # nothing of a profile is for marketing analysts: the record does not exist for them
    read(clients("marketing_analyst", sub="analyst"), record_id, "customer_support", 404)
    only = read(clients("compliance_officer", sub="officer"), record_id, "account_management",
                fields="email")
    assert only["data"] == {"email": "Zhang.Wei@Example.cn"}
    assert list(only["access"]) == ["email"]


def test_reads_are_audited_with_fields_requested_and_returned(clients: Clients,
                                                               admin: httpx.Client) -> None:
    record_id = write(clients())["record_id"]
    read(clients("support_agent", sub="agent"), record_id, "customer_support")
    [entry] = audit_entries(admin, "record.read")
    assert entry["actor"] == "agent"
    assert entry["purpose"] == "customer_support"
    assert entry["details"]["requested"] == sorted(PROFILE)
    assert entry["details"]["returned"] == ["email", "name", "phone"]
    assert entry["details"]["masked"] == ["email", "name", "phone"]


def test_free_text_pii_is_protected_in_the_stored_view(clients: Clients,
                                                       database_url: str) -> None:
    written = write(clients(), purpose="customer_support", record_type="support_ticket",
                    data={"subject": "Delivery", "body": NOTE, "channel": "phone"})
    stored = written["data"]["body"]
    assert "13912345678" not in stored
    assert "li.na@example.com" not in stored
    assert "139****5678" in stored
    found = {(f["field"], f["type"]) for f in written["findings"]}
    assert ("body", "PHONE_NUMBER") in found
    assert ("body", "EMAIL_ADDRESS") in found
    phone = next(f for f in written["findings"] if f["type"] == "PHONE_NUMBER")
    assert NOTE[phone["start"]:phone["end"]] == "13912345678"
    assert set(phone) == {"field", "type", "start", "end"}
    # the original is kept encrypted: those who may see it in clear get it back
    officer = read(clients("compliance_officer", sub="officer"), written["record_id"],
                   "customer_support")
    assert officer["data"]["body"] == NOTE
    dump = _dump(database_url)
    assert "13912345678" not in dump
    assert "li.na@example.com" not in dump
    assert "Zhang.Wei" not in dump


def _dump(database_url: str) -> str:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = [str(row) for table in ("records", "blind_indexes", "audit_entries",
                                       "audit_pending")
                for row in connection.execute(text(f"SELECT * FROM {table}"))]  # noqa: S608
    engine.dispose()
    return "\n".join(rows)


def test_no_plaintext_at_rest(clients: Clients, database_url: str) -> None:
    write(clients())
    dump = _dump(database_url)
    for value in ("张伟", "Zhang.Wei@Example.cn", "zhang.wei@example.cn", "13812345678",
                  "11010519491231002", "1949-12-31"):
        assert value not in dump


def test_idempotent_write(clients: Clients, admin: httpx.Client) -> None:
    client = clients()
    headers = {"Idempotency-Key": "order-7781"}
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: client.post("/v1/records", json=make_record(),
                                                        headers=headers), range(4)))
    done = [r for r in responses if r.status_code == 201]
    assert done
    assert all(r.status_code in (201, 409) for r in responses)
    assert len({r.json()["record_id"] for r in done}) == 1
    again = client.post("/v1/records", json=make_record(), headers=headers)
    assert again.status_code == 201
    assert again.json() == done[0].json()
    assert len(audit_entries(admin, "record.created")) == 1
    other = client.post("/v1/records", json=make_record(subject_id="cust-2"), headers=headers)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_rectification_rechecks_and_reindexes(clients: Clients, admin: httpx.Client) -> None:
    client = clients()
    written = client.post("/v1/records", json=make_record())
    record_id, etag = written.json()["record_id"], written.headers["etag"]
    bad = client.patch(f"/v1/records/{record_id}",
                       json={"purpose": "account_management", "data": {"email": "nope"}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "data.email"
    required = client.patch(f"/v1/records/{record_id}",
                            json={"purpose": "account_management", "data": {"name": None}})
    assert required.status_code == 422
    fixed = client.patch(f"/v1/records/{record_id}", headers={"If-Match": etag},
                         json={"purpose": "account_management",
                               "data": {"email": "wei.zhang@example.cn", "birth_date": None}})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["removed"] == ["birth_date"]
    assert "birth_date" not in fixed.json()["data"]
    stale = client.patch(f"/v1/records/{record_id}", headers={"If-Match": etag},
                         json={"purpose": "account_management", "data": {"name": "王芳"}})
    assert stale.status_code == 412
    officer = read(clients("compliance_officer", sub="officer"), record_id, "account_management")
    assert officer["data"]["email"] == "wei.zhang@example.cn"
    assert lookup(admin, email="WEI.ZHANG@example.cn") == ["cust-1"]
    assert lookup(admin, email="Zhang.Wei@Example.cn") == []
    [entry] = audit_entries(admin, "record.rectified")
    assert entry["details"]["fields"] == ["email"]
    assert entry["details"]["removed"] == ["birth_date"]


def lookup(client: httpx.Client, status: int = 200, **body: str) -> list[str]:
    response = client.post("/v1/subjects/lookup", json=body)
    assert response.status_code == status, response.text
    return list(response.json().get("subject_ids", []))


def test_lookup_by_blind_index(clients: Clients, admin: httpx.Client) -> None:
    client = clients()
    write(client)
    write(client, subject_id="cust-2", data={**PROFILE, "email": "other@example.cn",
                                             "phone": "+86 139 0000 1111"})
    assert lookup(admin, phone="13812345678") == ["cust-1"]
    assert lookup(admin, phone="+86 139-0000-1111") == ["cust-2"]
    assert lookup(admin, cn_resident_id="11010519491231002X") == ["cust-1", "cust-2"]
    agent = clients("support_agent", sub="agent")
    assert lookup(agent, email="zhang.wei@example.cn", purpose="customer_support") == ["cust-1"]
    lookup(agent, 422, email="zhang.wei@example.cn")  # a reader must state a purpose
    lookup(agent, 403, cn_resident_id="11010519491231002X", purpose="customer_support")
    lookup(admin, 422, email="a@example.cn", phone="13812345678")
    [entry] = [e for e in audit_entries(admin, "subject.lookup") if e["actor"] == "agent"]
    assert entry["details"] == {"kind": "email", "matches": 1, "subjects": ["cust-1"]}
    assert "zhang" not in str(entry).lower()


def test_other_writers_and_readers_get_not_found(clients: Clients) -> None:
    record_id = write(clients())["record_id"]
    other = clients("compliance_officer", sub="svc-billing")
    assert other.delete(f"/v1/records/{record_id}").status_code == 404
    assert other.patch(f"/v1/records/{record_id}", json={
        "purpose": "account_management", "data": {"name": "王芳"}}).status_code == 404
    missing = read(other, "rec_doesnotexist", "account_management", 404)
    hidden = read(clients("fraud_analyst", sub="risk"), record_id, "customer_support", 404)
    assert missing["detail"] == hidden["detail"] == "no such record"


def test_subject_listing_shows_only_what_the_caller_may_see(clients: Clients,
                                                            admin: httpx.Client) -> None:
    client = clients()
    profile = write(client)["record_id"]
    written = write(client, purpose="order_fulfilment", record_type="order",
                    data={"order_number": "SO-1", "amount": "99.50",
                          "shipping_address": "上海市浦东新区世纪大道100号",
                          "recipient_phone": "13812345678"})
    order = written["record_id"]
    # the delivery details go after 180 days, the transaction record after five years
    soon = datetime.now(UTC) + timedelta(days=180)
    assert set(written["field_retention"]) == {"shipping_address", "recipient_phone"}
    for due in written["field_retention"].values():
        assert abs(datetime.fromisoformat(due) - soon) < timedelta(minutes=5)
    assert datetime.fromisoformat(written["retention_until"]) > soon + timedelta(days=1000)
    write(client, subject_id="cust-2")
    warehouse = clients("fulfilment_operator", sub="warehouse")
    listing = warehouse.get("/v1/subjects/cust-1/records", params={"purpose": "order_fulfilment"})
    assert listing.status_code == 200
    records = {r["record_id"]: r for r in listing.json()["items"]}
    assert set(records) == {profile, order}
    assert records[order]["data"]["recipient_phone"] == "138****5678"  # stored masked only
    assert records[order]["access"]["recipient_phone"]["decision"] == "masked"
    analyst = clients("marketing_analyst", sub="analyst")
    empty = analyst.get("/v1/subjects/cust-1/records", params={"purpose": "order_fulfilment"})
    assert empty.json()["items"] == []
    paged = warehouse.get("/v1/subjects/cust-1/records",
                          params={"purpose": "order_fulfilment", "limit": 1})
    assert len(paged.json()["items"]) == 1
    rest = warehouse.get("/v1/subjects/cust-1/records", params={
        "purpose": "order_fulfilment", "limit": 1, "cursor": paged.json()["next"]}).json()
    assert {paged.json()["items"][0]["record_id"], rest["items"][0]["record_id"]} == \
        {profile, order}
    bad = warehouse.get("/v1/subjects/cust-1/records",
                        params={"purpose": "order_fulfilment", "cursor": "not a cursor"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"


def test_delete_removes_the_record_and_its_indexes(clients: Clients, admin: httpx.Client) -> None:
    client = clients()
    record_id = write(client)["record_id"]
    assert client.delete(f"/v1/records/{record_id}").status_code == 204
    read(clients("compliance_officer", sub="officer"), record_id, "account_management", 404)
    assert lookup(admin, email="zhang.wei@example.cn") == []
    assert client.delete(f"/v1/records/{record_id}").status_code == 404
    [entry] = audit_entries(admin, "record.deleted")
    assert entry["resource"] == f"record:{record_id}"


def test_expired_retention_and_restriction_deny_every_field(clients: Clients,
                                                            database_url: str) -> None:
    record_id = write(clients())["record_id"]
    officer = clients("compliance_officer", sub="officer")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE records SET retention_until = :t WHERE id = :id"),
                           {"t": datetime(2020, 1, 1), "id": record_id})
    assert read(officer, record_id, "account_management")["access"]["name"] == {
        "decision": "denied", "reason": "retention period over: awaiting deletion"}
    with engine.begin() as connection:
        connection.execute(text("UPDATE records SET retention_until = NULL, restricted_at = :t "
                                "WHERE id = :id"), {"t": datetime(2026, 1, 1), "id": record_id})
    engine.dispose()
    seen = read(officer, record_id, "account_management")
    assert seen["data"] == {}
    assert seen["access"]["email"]["reason"].startswith("restricted")


def test_rotating_a_subject_key_reencrypts_their_stored_records(
        clients: Clients, admin: httpx.Client, database_url: str) -> None:
    client = clients()
    profile = write(client)
    ticket = write(client, purpose="customer_support", record_type="support_ticket",
                   data={"subject": "Delivery", "body": NOTE, "channel": "phone"})
    keys = clients(sub="key-admin", scope="keys:admin")
    response = keys.post("/v1/keys/rotate", json={"kind": "dek", "subject_id": "cust-1"})
    assert response.status_code == 200, response.text
    [entry] = audit_entries(admin, "keys.dek_rotated")
    # five encrypted profile fields (one under SM4, a key of its own) and the ticket's original
    assert entry["details"]["values_reencrypted"] == 6
    officer = clients("compliance_officer", sub="officer")
    again = read(officer, profile["record_id"], "account_management")
    assert again["data"]["email"] == "Zhang.Wei@Example.cn"
    assert read(officer, ticket["record_id"], "customer_support")["data"]["body"] == NOTE
    engine = create_engine(database_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT data FROM records WHERE id = :id"),
                                    {"id": profile["record_id"]}).scalar_one()
    engine.dispose()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert token_version(stored["email"]) > token_version(profile["data"]["email"])


def test_erased_subject_reads_say_why(clients: Clients) -> None:
    record_id = write(clients())["record_id"]
    keys = clients(sub="key-admin", scope="keys:admin")
    assert keys.post("/v1/keys/subjects/cust-1/destroy", json={}).status_code == 200
    seen = read(clients("compliance_officer", sub="officer"), record_id, "account_management")
    assert seen["data"] == {}
    assert seen["access"]["email"] == {
        "decision": "denied", "reason": "subject-erased: the subject's key was destroyed"}


def test_a_key_destroyed_by_another_process_stops_reads_at_once(
        clients: Clients, runtime: Runtime) -> None:
    """The server's key is cached from a read; another process (`runtime`, a keyring of its
    own on the same database) destroys it. The next read, whose record statement also reads
    the key state, drops the cache and denies every encrypted field."""
    record_id = write(clients())["record_id"]
    officer = clients("compliance_officer", sub="officer")
    assert read(officer, record_id, "account_management")["data"]["email"] == \
        "Zhang.Wei@Example.cn"
    assert runtime.keyring is not None
    with runtime.session_factory() as session:
        shred.destroy_subject_keys(session, runtime.keyring, caller=Caller.system("test"),
                                   subject_id="cust-1")
        session.commit()
    seen = read(officer, record_id, "account_management")
    assert "email" not in seen["data"]
    assert seen["access"]["email"]["reason"].startswith("subject-erased")


def test_a_masked_reader_sees_scanned_text_as_stored(clients: Clients) -> None:
    written = write(clients(), purpose="customer_support", record_type="support_ticket",
                    data={"subject": "Delivery", "body": NOTE, "channel": "phone"})
    agent = read(clients("support_agent", sub="agent"), written["record_id"], "customer_support")
    assert agent["data"]["body"] == written["data"]["body"]
    assert "13912345678" not in agent["data"]["body"]
    assert agent["access"]["body"]["decision"] == "masked"
