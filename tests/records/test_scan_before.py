"""The free text of a write with an `Idempotency-Key` is scanned before the claim opens the
transaction (`service.scan_before`), and the write then uses those findings: the PII engine
runs once per text, with no lock held."""

from __future__ import annotations

from typing import Any

from app.auth.guard import Caller
from app.pii.engine import Finding
from app.records import service, storage
from app.runtime import Runtime

CALLER = Caller(sub="svc-crm", roles=("support_agent",), scopes=frozenset({"records:write"}))
NOTE = "Call back on 13912345678 after six"


def make_data(**overrides: Any) -> dict[str, Any]:
    return {"name": "Li Na", "email": "li.na@example.com", "notes": NOTE} | overrides


class CountingScanner:
    def __init__(self, runtime: Runtime):
        self.real = storage.scanner(runtime.settings)
        self.texts: list[str] = []

    def __call__(self, text: str) -> list[Finding]:
        self.texts.append(text)
        return self.real(text)


def _keys(runtime: Runtime, scan: CountingScanner) -> service.Keys:
    return service.Keys(keyring=runtime.require_keyring(), hash_key=runtime.pii_hash_key,
                        scan=scan)


def test_the_write_reuses_the_findings_made_before_its_transaction(runtime: Runtime) -> None:
    scan = CountingScanner(runtime)
    keys = service.scan_before(runtime.policy, _keys(runtime, scan),
                               record_type="customer_profile", purpose="account_management",
                               data=make_data())
    assert scan.texts == [NOTE]
    with runtime.transaction() as session:
        written = service.create(session, runtime.policy, keys, caller=CALLER,
                                 subject_id="scan-before-1", purpose="account_management",
                                 record_type="customer_profile", data=make_data())
    assert scan.texts == [NOTE]  # not scanned again inside the transaction
    assert [f["type"] for f in written.findings] == ["PHONE_NUMBER"]
    assert "13912345678" not in written.record.data["notes"]


def test_text_not_scanned_before_is_scanned_when_written(runtime: Runtime) -> None:
    scan = CountingScanner(runtime)
    keys = service.scan_before(runtime.policy, _keys(runtime, scan),
                               record_type="customer_profile", purpose="account_management",
                               data=make_data())
    assert keys.scan("write to li.na@example.com") != []
    assert scan.texts == [NOTE, "write to li.na@example.com"]


def test_a_write_that_fails_its_checks_is_not_scanned_before(runtime: Runtime) -> None:
    scan = CountingScanner(runtime)
    keys = _keys(runtime, scan)
    assert service.scan_before(runtime.policy, keys, record_type="customer_profile",
                               purpose="marketing_of_nothing", data=make_data()) is keys
    assert service.scan_before(runtime.policy, keys, record_type="no_such_type",
                               purpose="account_management", data=make_data()) is keys
    assert scan.texts == []

