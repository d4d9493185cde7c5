"""The operator CLI (`pgw dsr|holds|notices|consents|access|webhooks`) run through `main()`
against the live gateway's database: data made over HTTP, changes checked in the audit log."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import main as pgw
from app.config import Settings
from tests.gateway import Clients, audit_entries, grant_consent, write
from tests.tokens import TEST_ISSUER, TEST_SECRET


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    """run(*args) -> (exit code, stdout, stderr) of `pgw args` on the test database."""
    for key, value in {"PGW_DATABASE_URL": settings.sqlalchemy_url,
                       "PGW_DATA_DIR": str(settings.data_dir),
                       "PGW_POLICY_DIR": str(settings.policy_dir),
                       "PGW_JWT_SECRET": TEST_SECRET, "PGW_JWT_ISSUER": TEST_ISSUER}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PGW_OPERATOR", "alice")

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = pgw(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def _submit(client: httpx.Client, jurisdiction: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/dsr", json={
        "subject_id": "cust-9", "type": "access", "jurisdiction": jurisdiction,
        "verification": {"method": "logged_in_session"}, **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _refused(result: tuple[int, str, str], message: str) -> None:
    code, out, err = result
    assert code == 1
    assert out == ""
    assert err.strip() == f"pgw: {message}"  # one line, no traceback


def _actors(admin: httpx.Client, action: str) -> list[tuple[str, str]]:
    return [(e["actor"], e["outcome"]) for e in audit_entries(admin, action)]


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients(sub="svc-crm", scope="records:write records:read dsr:submit dsr:verify")


def test_dsr_list_show_extend_reject_retry(run: Any, crm: httpx.Client,
                                          admin: httpx.Client) -> None:
    gdpr, pipl = _submit(crm, "GDPR"), _submit(crm, "PIPL")

    code, out, _ = run("dsr", "list", "--json")
    assert code == 0
    listed = json.loads(out)["requests"]
    assert {r["id"]: r["status"] for r in listed} == {gdpr["id"]: "received",
                                                      pipl["id"]: "received"}
    code, out, _ = run("dsr", "list", "--status", "received")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "TYPE", "JURISDICTION", "STATUS"]
    assert sorted(row.split()[0] for row in rows) == sorted([gdpr["id"], pipl["id"]])
    assert json.loads(run("dsr", "list", "--due-within", "20", "--json")[1]) == {"requests": []}
    assert len(json.loads(run("dsr", "list", "--due-within", "40", "--json")[1])["requests"]) == 2
    assert json.loads(run("dsr", "list", "--overdue", "--json")[1]) == {"requests": []}

    code, out, _ = run("dsr", "extend", gdpr["id"], "--reason", "many systems to search",
                       "--json", "--operator", "bob")
    assert code == 0
    extended = json.loads(out)
    assert extended["extended"] is True
    assert extended["due_at"] > gdpr["due_at"]
    assert _actors(admin, "dsr.extended") == [("operator:bob", "allowed")]

    _refused(run("dsr", "extend", pipl["id"], "--reason", "x"),
             "PIPL allows no extension of the deadline")
    _refused(run("dsr", "extend", gdpr["id"], "--reason", "again"),
             "the deadline was already extended once")
    _refused(run("dsr", "retry", gdpr["id"]),
             "the request is received; only failed requests can be retried")
    _refused(run("dsr", "show", "dsr_nope"), "no such data-subject request")

    code, out, _ = run("dsr", "reject", pipl["id"], "--reason", "manifestly unfounded")
    assert (code, out.strip().split(",")[0]) == (0, f"{pipl['id']}: rejected")
    assert _actors(admin, "dsr.rejected") == [("operator:alice", "allowed")]
    assert admin.get(f"/v1/dsr/{pipl['id']}").json()["rejection_reason"] == \
        "manifestly unfounded"

    code, out, _ = run("dsr", "show", gdpr["id"], "--json")
    shown = json.loads(out)
    assert [e["event"] for e in shown["timeline"]] == ["submitted", "extended"]
    assert shown["timeline"][1]["actor"] == "operator:bob"
    assert ("operator:alice", "allowed") in _actors(admin, "dsr.read")


def test_holds_place_list_release(run: Any, crm: httpx.Client, admin: httpx.Client) -> None:
    code, out, _ = run("holds", "place", "--subject", "cust-9", "--reason", "litigation 42",
                       "--json")
    assert code == 0
    hold = json.loads(out)
    assert (hold["subject_id"], hold["created_by"], hold["active"]) == \
        ("cust-9", "operator:alice", True)
    code, out, _ = run("holds", "list", "--json")
    assert [h["id"] for h in json.loads(out)["legal_holds"]] == [hold["id"]]
    _refused(run("holds", "place", "--record-type", "no_such_type", "--reason", "x"),
             "unknown record type 'no_such_type' (record_type)")

    code, out, _ = run("holds", "release", hold["id"], "--operator", "carol")
    assert (code, out.strip()) == (0, f"released {hold['id']}; resumed 0 request(s)")
    assert json.loads(run("holds", "list", "--json")[1]) == {"legal_holds": []}
    _refused(run("holds", "release", hold["id"]), "this legal hold was already released")
    assert _actors(admin, "legal_hold.placed") == [("operator:alice", "allowed")]
    assert _actors(admin, "legal_hold.released") == [("operator:carol", "allowed")]


def test_access_four_eyes_holds_for_operators(run: Any, clients: Clients,
                                              admin: httpx.Client) -> None:
    record_id = write(clients())["record_id"]
    agent = clients("support_agent", sub="agent-7")
    filed = []
    for _ in range(2):
        response = agent.post("/v1/access-requests", json={
            "record_id": record_id, "fields": ["email"], "purpose": "customer_support",
            "justification": "Customer disputes a delivery", "duration": "PT2H"})
        assert response.status_code == 201, response.text
        filed.append(response.json()["id"])

    _refused(run("access", "approve", filed[0], "--operator", "agent-7"),
             "the requester cannot approve or deny their own request")
    assert ("operator:agent-7", "denied") in _actors(admin, "access.approved")
    code, out, _ = run("access", "list", "--status", "pending", "--json")
    assert sorted(r["id"] for r in json.loads(out)["access_requests"]) == sorted(filed)

    code, out, _ = run("access", "approve", filed[0], "--reason", "ticket 5521", "--json")
    assert code == 0
    approved = json.loads(out)
    assert (approved["status"], approved["decided_by"]) == ("approved", "operator:alice")
    assert approved["subject_id"] == "cust-1"
    code, out, _ = run("access", "deny", filed[1], "--reason", "no ticket")
    assert (code, out.strip()) == (0, f"{filed[1]}: denied")
    _refused(run("access", "approve", filed[1]), "this request is already denied")
    _refused(run("access", "deny", "acc_nope", "--reason", "x"), "no such access request")
    assert ("operator:alice", "allowed") in _actors(admin, "access.approved")
    assert agent.get(f"/v1/access-requests/{filed[0]}").json()["status"] == "approved"


def test_webhooks_add_list_deliveries_disable(run: Any, crm: httpx.Client,
                                              admin: httpx.Client) -> None:
    _refused(run("webhooks", "add", "http://169.254.169.254/latest", "--events", "dsr.*"),
             "url's host 169.254.169.254 is a cloud metadata address; name it in "
             "PGW_WEBHOOK_ALLOW_HOSTS to deliver there (url)")
    code, out, err = run("webhooks", "add", "https://hooks.example.com/x", "--events", "no.such")
    assert (code, out, err.count("\n")) == (1, "", 1)
    assert err.startswith("pgw: unknown event 'no.such'; known: ")
    assert err.endswith(" (events.0)\n")
    code, out, _ = run("webhooks", "add", "https://hooks.example.com/pgw", "--events",
                       "dsr.rejected", "--json")
    assert code == 0
    added = json.loads(out)
    assert len(added["secret"]) >= 32
    code, out, _ = run("webhooks", "list")
    assert added["id"] in out
    assert added["secret"] not in out
    assert _actors(admin, "webhook.registered") == [("operator:alice", "allowed")]

    dsr = _submit(crm, "PIPL")
    assert run("dsr", "reject", dsr["id"], "--reason", "duplicate")[0] == 0
    code, out, _ = run("webhooks", "deliveries", added["id"], "--json")
    [delivery] = json.loads(out)["deliveries"]
    assert (delivery["event_type"], delivery["state"], delivery["attempts"]) == \
        ("dsr.rejected", "queued", 0)

    assert run("webhooks", "disable", added["id"])[0] == 0
    assert json.loads(run("webhooks", "list", "--json")[1]) == {"webhooks": []}
    _refused(run("webhooks", "disable", added["id"]), "no such webhook")
    assert _actors(admin, "webhook.disabled") == [("operator:alice", "allowed")]


def test_notices_and_consents(run: Any, admin: httpx.Client, tmp_path: Path) -> None:
    text = tmp_path / "notice.txt"
    text.write_text("We email offers; withdraw any time.", encoding="utf-8")
    code, out, _ = run("notices", "register", "newsletter", "--version", "1", "--language",
                       "en", "--text-file", str(text), "--json")
    assert code == 0
    assert json.loads(out)["sha256"] == hashlib.sha256(text.read_bytes()).hexdigest()
    _refused(run("notices", "register", "newsletter", "--version", "1", "--language", "en",
                 "--text-file", str(text)),
             "notice newsletter version 1 (en) is already registered; a changed text is a "
             "new version")
    _refused(run("notices", "register", "Bad Id", "--version", "1", "--language", "en",
                 "--text-file", str(text)),
             "String should match pattern '^[a-z][a-z0-9_]{1,63}$' (notice_id)")
    code, out, _ = run("notices", "list")
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["marketing", "1"], ["newsletter", "1"], ["partner_advertising", "1"]]
    code, out, _ = run("notices", "show", "newsletter", "--json")
    assert json.loads(out)["notices"][0]["text"] == "We email offers; withdraw any time."
    _refused(run("notices", "show", "nope"), "no such notice")
    assert _actors(admin, "notice.registered")[-1] == ("operator:alice", "allowed")

    grant_consent(admin, "cust-9", "marketing_email")
    code, out, _ = run("consents", "list", "--subject", "cust-9", "--json")
    history = json.loads(out)["history"]
    assert [(e["purpose"], e["event"]) for e in history] == [("marketing_email", "granted")]
    code, out, _ = run("consents", "show", str(history[0]["event_id"]))
    assert out.splitlines()[0].split() == ["subject_id", "cust-9"]
    _refused(run("consents", "show", "999999"), "no such consent event")
    assert ("operator:alice", "allowed") in _actors(admin, "consent.read")
