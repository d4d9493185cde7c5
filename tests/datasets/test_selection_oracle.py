"""A selection of stored records is not an oracle: whether a person is stored, and their
values, cannot be learned from a refusal or a report. Every refusal of a selection reads the
same, whether nobody matches, fewer than k do, or k and l cannot be reached; the counts stay in
the audit log."""

from __future__ import annotations

from typing import Any

import httpx

from tests.datasets.common import anonymize, orders, profiles, store
from tests.gateway import Clients, audit_entries

PROBLEM = {"type", "title", "status", "detail"}


def _where(row: dict[str, Any], **values: list[str]) -> dict[str, Any]:
    """A selection of the person in `row` by birth date, postcode and gender."""
    return {"where": {"birth_date": [row["birth_date"]], "postcode": [row["postcode"]],
                      "gender": [row["gender"]], **values}}


def test_one_person_no_one_and_fewer_than_k_are_refused_alike(
        analyst: httpx.Client, clients: Clients, admin: httpx.Client) -> None:
    rows = profiles(30, seed=11)
    store(clients, rows)
    target = rows[0]
    four = [row["birth_date"] for row in rows[:4]]
    assert sum(row["birth_date"] in four for row in rows) == 4
    refusals = [
        anonymize(analyst, None, 422, select=_where(target)),  # the one person
        anonymize(analyst, None, 422, select=_where(target, birth_date=["1900-01-01"])),
        anonymize(analyst, None, 422, select={"where": {"birth_date": four}}),  # k - 1
    ]
    assert refusals[0] == refusals[1] == refusals[2]
    assert set(refusals[0]) == PROBLEM  # no closest, no counts
    assert refusals[0]["type"].endswith("anonymization-target-unreachable")
    assert refusals[0]["detail"].startswith("the selected records cannot be released at k=5")
    # the audit log, which the caller cannot read, keeps what happened
    entries = audit_entries(admin, "dataset.refused")
    assert [entry["details"]["rows"] for entry in entries] == [1, 0, 4]
    assert {entry["outcome"] for entry in entries} == {"denied"}


def test_a_selection_that_misses_l_is_refused_like_an_empty_one(
        analyst: httpx.Client, clients: Clients) -> None:
    uniform = [{**row, "amount": "9.90"} for row in orders(12)]  # one amount: l=2 is out
    store(clients, uniform, record_type="order", purpose="order_fulfilment",
          fields=("order_number", "recipient_phone", "shipping_address", "amount"))
    unreachable = anonymize(analyst, None, 422, record_type="order", k=2, l=2, select={})
    nobody = anonymize(analyst, None, 422, record_type="order", k=2, l=2,
                       select={"where": {"amount": ["12345.00"]}})
    assert unreachable == nobody
    assert set(unreachable) == PROBLEM


def test_a_release_reports_nothing_of_the_records_left_out(
        analyst: httpx.Client, clients: Clients, admin: httpx.Client) -> None:
    rows = profiles(30, seed=11)
    store(clients, rows)
    women = sum(row["gender"] == "F" for row in rows)
    released = anonymize(analyst, None, 200, k=2, max_suppression=0.5,
                         select={"where": {"gender": ["F"]}})
    assert released["report"]["selection"] == {
        "source": "records", "record_type": "customer_profile", "rows": women,
        "filters": {"created_after": None, "created_before": None, "collected_for": None,
                    "where": {"gender": 1}}}
    [entry] = audit_entries(admin, "dataset.released")
    assert entry["details"]["excluded_by_filter"] == 30 - women
    assert entry["details"]["subjects"] == women
