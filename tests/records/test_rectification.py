"""Rectification keeps to the purpose a record was collected for (issue 15, item 8)."""

from __future__ import annotations

import httpx

from tests.gateway import Clients, audit_entries, read, write

ORDER_CONTACT = {"name": "张伟", "email": "zhang.wei@example.cn", "phone": "13812345678"}


def _fulfilment_profile(clients: Clients) -> str:
    """A profile collected for order fulfilment: no resident ID, which that purpose never
    collects."""
    return str(write(clients(), purpose="order_fulfilment", data=dict(ORDER_CONTACT))["record_id"])


def test_a_patch_cannot_add_a_field_the_records_purpose_does_not_collect(
        clients: Clients, admin: httpx.Client) -> None:
    record_id = _fulfilment_profile(clients)
    response = clients().patch(f"/v1/records/{record_id}", json={
        "purpose": "fraud_prevention", "data": {"cn_resident_id": "11010519491231002X"}})
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "data.cn_resident_id",
         "reason": "field cn_resident_id is not collected for purpose order_fulfilment, the "
                   "purpose this record was collected for"},
        {"field": "purpose",
         "reason": "this record was collected for order_fulfilment; data for fraud_prevention "
                   "needs a new record"}]
    # nothing was stored: a fraud analyst, who may see resident IDs, finds none in it
    fraud = read(clients("fraud_analyst", sub="risk"), record_id, "fraud_prevention", 404)
    assert fraud["detail"] == "no such record"
    officer = read(clients("compliance_officer", sub="officer"), record_id, "account_management")
    assert set(officer["data"]) == set(ORDER_CONTACT)
    [refused] = audit_entries(admin, "record.rectify_refused")
    assert (refused["outcome"], refused["actor"], refused["resource"]) == (
        "denied", "svc-crm", f"record:{record_id}")
    assert refused["details"] == {"reason": "purpose-limitation",
                                  "record_purpose": "order_fulfilment",
                                  "fields": ["cn_resident_id"]}
    assert audit_entries(admin, "record.rectified") == []


def test_the_records_own_purpose_still_refuses_the_field(clients: Clients) -> None:
    record_id = _fulfilment_profile(clients)
    response = clients().patch(f"/v1/records/{record_id}", json={
        "purpose": "order_fulfilment", "data": {"cn_resident_id": "11010519491231002X"}})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["data.cn_resident_id"]


def test_another_purpose_is_refused_even_for_fields_the_record_holds(clients: Clients) -> None:
    record_id = _fulfilment_profile(clients)
    response = clients().patch(f"/v1/records/{record_id}", json={
        "purpose": "account_management", "data": {"email": "wei@example.cn"}})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "purpose", "reason": "this record was collected for order_fulfilment; data "
                                       "for account_management needs a new record"}]
    fixed = clients().patch(f"/v1/records/{record_id}", json={
        "purpose": "order_fulfilment", "data": {"email": "wei@example.cn"}})
    assert fixed.status_code == 200, fixed.text
    officer = read(clients("compliance_officer", sub="officer"), record_id, "account_management")
    assert officer["data"]["email"] == "wei@example.cn"
