"""Releasing and assessing datasets: the checks, the audit, and the refusal when the target
cannot be reached."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import iso_or_none, utcnow
from app.consent.decision import decide
from app.datasets import anonymize as engine
from app.errors import GatewayError, Invalid
from app.keys.keyring import Keyring
from app.policy.loader import Policy
from app.policy.models import Dataset, LegalBasis
from app.records import service as record_service
from app.records import storage
from app.retention import rules


@dataclass(frozen=True)
class Filters:
    created_after: datetime | None = None
    created_before: datetime | None = None
    collected_for: list[str] | None = None  # purposes the records were collected for
    where: dict[str, list[str]] | None = None  # released field -> accepted values

    def check(self, policy: Policy, dataset: Dataset) -> None:
        for index, purpose in enumerate(self.collected_for or ()):
            if purpose not in policy.body.purposes:
                raise Invalid(f"unknown purpose {purpose!r}",
                              field=f"select.collected_for.{index}")
        released = {*dataset.quasi_identifiers, *dataset.sensitive}
        for name, values in (self.where or {}).items():
            if name not in released:
                raise Invalid(f"{name} is not a field the release holds; filter on one of "
                              f"{', '.join(sorted(released))}", field=f"select.where.{name}")
            if not values:
                raise Invalid("give at least one value", field=f"select.where.{name}")

    def described(self) -> dict[str, Any]:
        """For the report and the audit: the filter values of `where` are data, so only
        how many there were."""
        return {"created_after": iso_or_none(self.created_after),
                "created_before": iso_or_none(self.created_before),
                "collected_for": self.collected_for,
                "where": {name: len(values) for name, values in (self.where or {}).items()}}

    def matches(self, row: dict[str, Any]) -> bool:
        return all(str(row.get(name)) in values for name, values in (self.where or {}).items())


class TargetUnreachable(GatewayError):
    status, type, title = 422, "anonymization-target-unreachable", "Target not reachable"


def spec_for(policy: Policy, record_type: str) -> Dataset:
    spec = policy.body.record_types.get(record_type)
    if spec is None:
        raise Invalid(f"unknown record type {record_type!r}", field="record_type")
    if spec.dataset is None:
        raise Invalid(f"the policy does not allow {record_type} to be released as a dataset",
                      field="record_type")
    return spec.dataset


def select_rows(session: Session, policy: Policy, keyring: Keyring, *, record_type: str,
                purpose: str, filters: Filters) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The stored records of a type that pass the filters, decrypted to the fields the
    release uses, of the subjects whose consent or another legal basis covers the purpose;
    the others are left out and counted. Restricted, erased and de-identified records are
    never selected."""
    dataset = spec_for(policy, record_type)
    record_spec = policy.body.record_types[record_type]
    policy.purpose(purpose)
    filters.check(policy, dataset)
    # dropped identifiers are not even decrypted
    wanted = {name for name, how in dataset.direct_identifiers.items()
              if how == "pseudonymize"} | {*dataset.quasi_identifiers, *dataset.sensitive}
    sensitive = any(record_spec.fields[name].sensitive for name in wanted)
    now = utcnow()
    allowed: dict[str, bool] = {}
    rows, excluded, records, filtered = [], 0, 0, 0
    subjects: set[str] = set()
    for record in record_service.usable_of_type(
            session, record_type, created_after=filters.created_after,
            created_before=filters.created_before, purposes=filters.collected_for):
        records += 1
        if record.subject_id not in allowed:
            allowed[record.subject_id] = decide(session, policy, subject_id=record.subject_id,
                                                purpose=purpose, sensitive=sensitive).allowed
        if not allowed[record.subject_id]:
            excluded += 1
            continue
        context = storage.record_context(record.id)
        row = {}
        for name in wanted & set(record.data):
            if rules.field_expired(record.field_retention, name, now):
                continue  # its retention is over: not for release either
            row[name] = storage.reveal_value(
                session, keyring, subject_id=record.subject_id, context=context, name=name,
                spec=record_spec.fields[name], stored=record.data[name],
                original=record.originals.get(name), clear=True)
        if not filters.matches(row):
            filtered += 1
            continue
        rows.append(row)
        subjects.add(record.subject_id)
    return rows, {"source": "records", "record_type": record_type, "records": records,
                  "excluded_without_basis": excluded, "excluded_by_filter": filtered,
                  "subjects": len(subjects), "filters": filters.described()}


def _check_purpose(policy: Policy, purpose: str) -> None:
    spec = policy.purpose(purpose)
    if spec.legal_basis is LegalBasis.CONSENT:
        # uploaded rows carry no subjects whose consent could be checked
        raise Invalid(f"{purpose} rests on consent: uploaded rows cannot show that every "
                      "subject gave it; release for a purpose with another legal basis",
                      field="purpose")


# What a release's report says of its selection. How many stored records there were, how
# many lacked a legal basis or failed the filters and how many subjects they were belong to
# people outside the release, in any number down to one: they go to the audit log only.
_SELECTION_IN_REPORT = ("source", "record_type", "filters", "rows")


def _refused_selection(k: int, l: int, max_suppression: float) -> TargetUnreachable:  # noqa: E741
    """The one refusal for stored records, whatever the reason: no match, fewer than k, or
    too few alike. It says nothing that depends on the records, so a selection narrowed to
    one person tells neither whether that person is stored nor anything of their values."""
    return TargetUnreachable(
        f"the selected records cannot be released at k={k} and l={l} with at most "
        f"{max_suppression:.1%} of them suppressed (too few match the selection, or too few "
        "are alike); nothing was released")


def release(session: Session, policy: Policy, *, caller: Caller, record_type: str,
            purpose: str, rows: Sequence[dict[str, Any]], k: int, l: int,  # noqa: E741
            max_suppression: float, selection: dict[str, Any] | None = None,
            progress: Callable[[int, int], None] = lambda done, total: None) -> engine.Release:
    """Anonymise rows (uploaded, or selected by `select_rows` with their `selection`);
    refused, and audited, when k and l cannot be reached."""
    spec = spec_for(policy, record_type)
    stored = selection is not None
    if selection is None:
        if not rows:
            raise Invalid("there are no rows to release", field="rows")
        _check_purpose(policy, purpose)
        selection = {"source": "upload", "record_type": record_type}
    selection = {**selection, "rows": len(rows)}
    release_id = f"rel_{secrets.token_hex(12)}"
    details = {**selection, "k": k, "l": l, "max_suppression": max_suppression}

    def refused(reason: str) -> None:
        audit.record(session, caller=caller, action="dataset.refused", purpose=purpose,
                     outcome=audit.Outcome.DENIED, resource=f"dataset:{release_id}",
                     details={**details, "reason": reason})

    if stored and len(rows) < k:
        refused("fewer than k records selected")
        raise _refused_selection(k, l, max_suppression)
    try:
        result = engine.anonymize(rows, spec, k=k, l=l, max_suppression=max_suppression,
                                  progress=progress)
    except engine.Unreachable as exc:
        refused("target unreachable")
        if stored:  # how close it came depends on records the caller may not see
            raise _refused_selection(k, l, max_suppression) from None
        raise TargetUnreachable(
            f"k={k} and l={l} cannot be reached with at most {max_suppression:.1%} of the "
            "records suppressed; nothing was released", closest=exc.best) from None
    result.report["release_id"] = release_id
    result.report["selection"] = {name: selection[name] for name in _SELECTION_IN_REPORT
                                  if name in selection}
    audit.record(session, caller=caller, action="dataset.released", purpose=purpose,
                 resource=f"dataset:{release_id}",
                 details={**details, "released": result.report["released"],
                          "suppressed": result.report["suppressed"],
                          "levels": result.levels})
    return result


def assess(session: Session, policy: Policy, *, caller: Caller, record_type: str,
           rows: Sequence[dict[str, Any]], k: int, l: int) -> dict[str, Any]:  # noqa: E741
    spec = spec_for(policy, record_type)
    found = engine.assess(rows, spec, k=k, l=l)
    audit.record(session, caller=caller, action="dataset.assessed",
                 details={"record_type": record_type, "rows": len(rows), "k": found["k"],
                          "l": found["l"]})
    return found
