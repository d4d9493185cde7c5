from __future__ import annotations

import httpx
import pytest

from tests.gateway import Clients, write


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients("compliance_officer",
                   scope="records:write records:read consent:write dsr:submit dsr:verify")


def write_order(crm: httpx.Client, subject_id: str = "cust-r") -> str:
    """An order: its address and phone go after 180 days, the order is de-identified after 5
    years."""
    return str(write(crm, subject_id=subject_id, purpose="order_fulfilment",
                     record_type="order",
                     data={"order_number": "SO-9", "amount": "15.00",
                           "shipping_address": "广州市天河区体育西路1号",
                           "recipient_phone": "13912345678"})["record_id"])
