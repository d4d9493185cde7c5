"""Policies: the default pack, each kind of mistake reported with file, path and reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import Settings
from app.policy.loader import PolicyError, json_schema, load_policy
from app.policy.report import processing_records, to_markdown
from tests.server import PGW, LiveServer
from tests.tokens import make_token

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "policies"
GOLDEN = Path(__file__).parent / "golden" / "report.md"


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A copy of the default policy pack to break."""
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT, target)
    return target


def edit(pack: Path, name: str, old: str, new: str) -> None:
    path = pack / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def test_default_pack_loads() -> None:
    body = load_policy(DEFAULT).body
    assert set(body.record_types) == {"customer_profile", "order", "marketing_preferences",
                                      "support_ticket"}
    assert body.record_types["order"].retention.days == 1825
    assert body.record_types["customer_profile"].fields["cn_resident_id"].sensitive
    assert body.purposes["partner_advertising"].separate_consent
    assert body.jurisdictions["PIPL"].age_of_digital_consent == 14


def test_version_is_the_content_hash(pack: Path) -> None:
    first = load_policy(pack).version
    assert load_policy(pack).version == first
    edit(pack, "purposes.yaml", "consent_lifetime_days: 730", "consent_lifetime_days: 731")
    assert load_policy(pack).version != first


@pytest.mark.parametrize(("file", "old", "new", "path", "reason"), [
    ("purposes.yaml", "legal_basis: contract", "legal_bass: contract",
     "purposes.account_management.legal_bass", "unknown key"),
    ("purposes.yaml", "legal_basis: contract", "legal_basis: because",
     "purposes.account_management.legal_basis", "Input should be"),
    ("record_types.yaml", "protection: mask:mask", "protection: mask:scramble",
     "record_types.order.fields.recipient_phone.protection", "protection must be"),
    ("record_types.yaml", "purposes: [order_fulfilment]", "purposes: [order_fullfilment]",
     "record_types.order.fields.shipping_address.purposes", "unknown purpose 'order_fullfilment'"),
    ("record_types.yaml", "category: financial", "category: money",
     "record_types.order.fields.order_number.category", "unknown category 'money'"),
    ("roles.yaml", "financial: {customer_support: clear}", "financial: {customer_support: open}",
     "roles.support_agent.access.financial.customer_support", "Input should be"),
    ("roles.yaml", "identity: {fraud_prevention: masked}", "identity: {fraud: masked}",
     "roles.fraud_analyst.access.identity.fraud", "unknown purpose 'fraud'"),
    ("jurisdictions.yaml", "age_of_digital_consent: 14", "age_of_digital_consent: -1",
     "jurisdictions.PIPL.age_of_digital_consent", "greater than or equal to 0"),
    ("record_types.yaml", "retention: {days: 730, trigger: collection, action: delete}",
     "retention: {days: 730, trigger: forever, action: delete}",
     "record_types.support_ticket.retention.trigger", "Input should be"),
    ("record_types.yaml", "quasi_identifiers: {shipping_address: address}",
     "quasi_identifiers: {shipping_address: address, q_a: date, q_b: date, q_c: date, "
     "q_d: date, q_e: date}", "record_types.order.dataset.quasi_identifiers",
     "38880 combinations of levels; a release can search at most 10000"),
])
def test_mistakes_name_file_path_and_reason(pack: Path, file: str, old: str, new: str,
                                            path: str, reason: str) -> None:
    edit(pack, file, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policy(pack)
    assert caught.value.file.name == file
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_invalid_yaml_names_the_line(pack: Path) -> None:
    (pack / "roles.yaml").write_text("roles:\n  support_agent: [unclosed\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(pack)
    assert caught.value.file.name == "roles.yaml"
    assert caught.value.path.startswith("line ")


def test_section_defined_twice(pack: Path) -> None:
    (pack / "extra.yaml").write_text((pack / "categories.yaml").read_text())
    with pytest.raises(PolicyError, match="already defined in categories.yaml"):
        load_policy(pack)


def test_missing_section(pack: Path) -> None:
    (pack / "roles.yaml").unlink()
    with pytest.raises(PolicyError) as caught:
        load_policy(pack)
    assert (caught.value.path, caught.value.reason) == ("roles",
                                                        "no policy file defines this section")


def test_a_file_that_is_not_a_mapping(pack: Path) -> None:
    (pack / "x.yaml").write_text("- just\n- a list\n")
    with pytest.raises(PolicyError, match="mapping of sections"):
        load_policy(pack)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PGW, "policy", *args], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "PGW_POLICY_DIR": str(DEFAULT)})


def test_policy_check_command(pack: Path) -> None:
    ok = cli("check")
    assert ok.returncode == 0
    assert "8 purposes, 4 record types, 5 roles, 3 jurisdictions" in ok.stdout
    edit(pack, "record_types.yaml", "category: financial", "category: money")
    bad = cli("check", str(pack))
    assert bad.returncode == 1
    assert "record_types.yaml: record_types.order.fields.order_number.category: unknown " \
           "category 'money'" in bad.stderr


def test_service_refuses_to_start_on_a_bad_policy(pack: Path, settings: Settings) -> None:
    edit(pack, "purposes.yaml", "legal_basis: contract", "legal_basis: because")
    env = {**os.environ, "PGW_POLICY_DIR": str(pack), "PGW_DATA_DIR": str(settings.data_dir),
           "PGW_DATABASE_URL": settings.sqlalchemy_url}
    result = subprocess.run([PGW, "serve", "--port", "0"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "purposes.yaml: purposes.account_management.legal_basis" in \
        result.stdout + result.stderr


def test_json_schema_for_editors() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == {"categories", "purposes", "record_types", "roles",
                                         "jurisdictions", "schedules", "verification"}
    assert schema["additionalProperties"] is False
    assert json.loads(cli("schema").stdout) == schema


def test_report_of_the_default_pack_matches_the_golden_file() -> None:
    report = to_markdown(processing_records(load_policy(DEFAULT)))
    if os.environ.get("PGW_UPDATE_GOLDEN"):
        GOLDEN.write_text(report)
    assert report == GOLDEN.read_text(), "regenerate with PGW_UPDATE_GOLDEN=1 and review"
    assert cli("report").stdout == report


def test_report_json_lists_purposes_bases_and_transfers() -> None:
    records = json.loads(cli("report", "--format", "json").stdout)
    overseas = next(a for a in records["activities"] if a["purpose"] == "overseas_support")
    assert overseas["cross_border_transfer"] is True
    assert overseas["separate_consent"] is True
    assert overseas["legal_basis"] == "consent"
    compliance = next(a for a in records["activities"] if a["purpose"] == "legal_compliance")
    assert {d["field"] for d in compliance["data"]} >= {"cn_resident_id", "amount"}


def test_policy_api(live: LiveServer) -> None:
    body = live.client(make_token(scope="policy:read")).get("/v1/policy").json()
    assert body["version"] == load_policy(DEFAULT).version
    assert body["purposes"]["marketing_email"]["legal_basis"] == "consent"
    assert live.client(make_token(scope="audit:read")).get("/v1/policy").status_code == 403


def test_audit_entries_carry_the_policy_version(live: LiveServer) -> None:
    client = live.client(make_token())
    client.get("/v1/audit")
    entry = client.get("/v1/audit").json()["items"][0]
    assert entry["policy_version"] == load_policy(DEFAULT).version
