"""Generated rows, an independent k and l count, and a release call, for the dataset tests."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import httpx

PLACES = [("上海市", "浦东新区"), ("上海市", "徐汇区"), ("广东省广州市", "天河区"),
          ("北京市", "朝阳区"), ("浙江省杭州市", "西湖区")]
QIS = ("birth_date", "gender", "postcode", "address")


def profiles(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        province_city, district = rnd.choice(PLACES)
        rows.append({
            "name": f"客户{i:05d}", "email": f"user{i:05d}@example.cn",
            "phone": f"138{i:08d}", "cn_resident_id": "11010519491231002X",
            "birth_date": f"{rnd.randint(1950, 2005)}-{rnd.randint(1, 12):02d}-"
                          f"{rnd.randint(1, 28):02d}",
            "gender": rnd.choice("MF"), "postcode": f"{rnd.randint(100000, 999999)}",
            "address": f"{province_city}{district}幸福路{rnd.randint(1, 999)}号",
            "notes": f"call {i}"})
    return rows


def orders(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [{"order_number": f"SO-{i}", "recipient_phone": f"139{i:08d}",
             "shipping_address": "".join(rnd.choice(PLACES)) + "某路1号",
             "amount": rnd.choice(["9.90", "19.90", "99.00", "199.00", "1999.00"])}
            for i in range(n)]


def independent_k_l(rows: list[dict[str, Any]], qis: tuple[str, ...],
                    sensitive: tuple[str, ...] = ()) -> tuple[int, int | None]:
    """Smallest class and fewest distinct sensitive values, by sorting and grouping."""
    def key(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[q]) for q in qis)

    k, l_min = len(rows), None
    for _, group in itertools.groupby(sorted(rows, key=key), key=key):
        members = list(group)
        k = min(k, len(members))
        for attribute in sensitive:
            distinct = len({str(m[attribute]) for m in members})
            l_min = distinct if l_min is None else min(l_min, distinct)
    return k, l_min


def anonymize(client: httpx.Client, rows: list[dict[str, Any]] | None, status: int = 200,
               **body: Any) -> dict[str, Any]:
    """Uploaded `rows`, or (None) a selection of stored records in `body`."""
    payload = {"record_type": "customer_profile", "purpose": "legal_compliance",
               **({"rows": rows} if rows is not None else {}), **body}
    response = client.post("/v1/datasets/anonymize", json=payload)
    assert response.status_code == status, response.text
    return dict(response.json())


def store(clients: Callable[..., httpx.Client], rows: list[dict[str, Any]], *,
          record_type: str = "customer_profile", purpose: str = "account_management",
          fields: tuple[str, ...] = ("name", "email", "birth_date", "gender", "postcode",
                                     "address")) -> None:
    """Write `rows` as stored records of subjects cust-0, cust-1, ..."""
    crm = clients("compliance_officer", scope="records:write")
    for i, row in enumerate(rows):
        body = {"subject_id": f"cust-{i}", "purpose": purpose, "record_type": record_type,
                "data": {name: row[name] for name in fields}}
        response = crm.post("/v1/records", json=body)
        assert response.status_code == 201, response.text
