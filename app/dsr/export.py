"""Access and portability: everything held about a subject, as JSON (machine-readable) and as a
readable HTML page in the subject's language. Both are stored encrypted under the subject's key
until the download window closes."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.clock import isoformat, utcnow
from app.consent import service as consent
from app.dsr.models import DsrExport, DsrRequest
from app.keys.fields import decrypt_field, encrypt_field
from app.keys.keyring import Keyring
from app.policy.loader import Policy
from app.records import service as record_service
from app.records import storage
from app.records.service import Record

FORMAT = "pgw-subject-export/1"
# What counts as someone reading or receiving the subject's data, in the audit log.
READ_ACTIONS = ("record.read", "subject.records_read", "record.unprotected", "subject.lookup")


def _record(session: Session, policy: Policy, keyring: Keyring, record: Record,
            lang: str) -> dict[str, Any]:
    spec = policy.body.record_types.get(record.record_type)
    context = storage.record_context(record.id)
    data: dict[str, Any] = {}
    for name, stored in record.data.items():
        field = spec.fields.get(name) if spec else None
        if field is None:  # no longer in the policy: decrypt what describes itself
            data[name] = stored
            continue
        data[name] = storage.reveal_value(session, keyring, subject_id=record.subject_id,
                                          context=context, name=name, spec=field,
                                          stored=stored, original=record.originals.get(name),
                                          clear=True)
    retention = spec.retention if spec else None
    return {
        "record_id": record.id, "record_type": record.record_type,
        "description": getattr(spec.description, lang) if spec else None,
        "purpose": record.purpose, "collected_at": isoformat(record.created_at),
        "updated_at": isoformat(record.updated_at), "data": data,
        "retention": {"until": isoformat(record.retention_until)
                      if record.retention_until else None,
                      "days": retention.days if retention else None,
                      "trigger": str(retention.trigger) if retention else None,
                      "action": str(retention.action) if retention else None,
                      "legal_basis": retention.legal_basis if retention else None,
                      "fields": record.field_retention},
        "restricted": record.restricted_at is not None,
    }


def _purposes(policy: Policy, names: set[str], lang: str) -> dict[str, Any]:
    out = {}
    for name in sorted(names):
        purpose = policy.body.purposes.get(name)
        if purpose is None:
            continue
        out[name] = {"description": getattr(purpose.description, lang),
                     "legal_basis": str(purpose.legal_basis),
                     "recipients": purpose.third_party_recipients,
                     "cross_border_transfer": purpose.cross_border_transfer}
    return out


def _access_log(session: Session, subject_id: str) -> list[dict[str, Any]]:
    entries = audit.reads_of_subject(session, subject_id=subject_id, actions=READ_ACTIONS)
    return [{"at": isoformat(e.ts), "by": e.actor, "roles": e.roles, "action": e.action,
             "purpose": e.purpose} for e in entries]


def build(session: Session, policy: Policy, keyring: Keyring, dsr: DsrRequest) -> dict[str, Any]:
    lang = "zh" if dsr.language == "zh" else "en"
    records = record_service.for_subject(session, dsr.subject_id, by_creation=True)
    events = consent.history(session, dsr.subject_id)
    purposes = {r.purpose for r in records} | {e.purpose for e in events}
    return {
        "format": FORMAT, "subject_id": dsr.subject_id, "generated_at": isoformat(utcnow()),
        "request": {"id": dsr.id, "type": dsr.type, "jurisdiction": dsr.jurisdiction,
                    "submitted_at": isoformat(dsr.submitted_at)},
        "policy_version": policy.version,
        "records": [_record(session, policy, keyring, r, lang) for r in records],
        "consent": [consent.event_dict(e) for e in events],
        "purposes": _purposes(policy, purposes, lang),
        "access_log": _access_log(session, dsr.subject_id),
    }


LABELS = {
    "en": {"title": "Your personal data", "records": "What we hold", "field": "Field",
           "value": "Value", "purpose": "Purpose", "legal_basis": "Legal basis",
           "kept_until": "Kept until", "consent": "Your consent choices", "event": "Choice",
           "notice": "Notice version", "when": "When", "recipients": "Shared with",
           "access": "Who read your data", "by": "By", "purposes": "Why we use it",
           "none": "none", "generated": "Generated", "restricted": "processing restricted"},
    "zh": {"title": "您的个人信息", "records": "我们持有的信息", "field": "字段", "value": "内容",
           "purpose": "处理目的", "legal_basis": "法律依据", "kept_until": "保存期限至",
           "consent": "您的同意记录", "event": "操作", "notice": "告知版本", "when": "时间",
           "recipients": "接收方", "access": "查阅记录", "by": "查阅者", "purposes": "处理目的说明",
           "none": "无", "generated": "生成时间", "restricted": "已限制处理"},
}


def render_html(document: dict[str, Any], policy: Policy, lang: str) -> str:
    """A readable page of the export; every value is escaped."""
    t = LABELS["zh" if lang == "zh" else "en"]
    e = html.escape
    parts = [f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">',
             f"<title>{e(t['title'])}</title></head><body><h1>{e(t['title'])}</h1>",
             f"<p>{e(t['generated'])}: {e(document['generated_at'])}</p>",
             f"<h2>{e(t['records'])}</h2>"]
    for record in document["records"]:
        spec = policy.body.record_types.get(record["record_type"])
        title = record["description"] or record["record_type"]
        restricted = f" ({e(t['restricted'])})" if record["restricted"] else ""
        parts.append(f"<h3>{e(title)}{restricted}</h3><p>{e(t['purpose'])}: "
                     f"{e(record['purpose'])}; {e(t['kept_until'])}: "
                     f"{e(record['retention']['until'] or t['none'])}</p>")
        parts.append(f"<table><tr><th>{e(t['field'])}</th><th>{e(t['value'])}</th></tr>")
        for name, value in record["data"].items():
            field = spec.fields.get(name) if spec else None
            label = getattr(field.description, lang if lang == "zh" else "en") if field else name
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            parts.append(f"<tr><td>{e(label)}</td><td>{e(shown)}</td></tr>")
        parts.append("</table>")
    parts.append(f"<h2>{e(t['purposes'])}</h2><ul>")
    for name, purpose in document["purposes"].items():
        recipients = ", ".join(purpose["recipients"]) or t["none"]
        parts.append(f"<li><b>{e(purpose['description'])}</b> ({e(name)}): "
                     f"{e(t['legal_basis'])} {e(purpose['legal_basis'])}; "
                     f"{e(t['recipients'])}: {e(recipients)}</li>")
    parts.append(f"</ul><h2>{e(t['consent'])}</h2><table><tr><th>{e(t['when'])}</th>"
                 f"<th>{e(t['purpose'])}</th><th>{e(t['event'])}</th>"
                 f"<th>{e(t['notice'])}</th></tr>")
    for event in document["consent"]:
        parts.append(f"<tr><td>{e(event['captured_at'])}</td><td>{e(event['purpose'])}</td>"
                     f"<td>{e(event['event'])}</td><td>{e(str(event['notice_id']))} "
                     f"v{e(str(event['notice_version']))}</td></tr>")
    parts.append(f"</table><h2>{e(t['access'])}</h2><table><tr><th>{e(t['when'])}</th>"
                 f"<th>{e(t['by'])}</th><th>{e(t['purpose'])}</th></tr>")
    for entry in document["access_log"]:
        parts.append(f"<tr><td>{e(entry['at'])}</td><td>{e(entry['by'])}</td>"
                     f"<td>{e(entry['purpose'] or '')}</td></tr>")
    parts.append("</table></body></html>")
    return "".join(parts)


def store(session: Session, policy: Policy, keyring: Keyring, dsr: DsrRequest, *,
          ttl: timedelta) -> dict[str, int]:
    """Build the export and keep it, encrypted, for `ttl`; idempotent (rebuilt on a retry)."""
    document = build(session, policy, keyring, dsr)
    page = render_html(document, policy, dsr.language)
    context = f"dsr:{dsr.id}"
    now = utcnow()
    existing = session.get(DsrExport, dsr.id)
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(DsrExport(
        dsr_id=dsr.id, subject_id=dsr.subject_id, created_at=now, expires_at=now + ttl,
        json_doc=encrypt_field(session, keyring, subject_id=dsr.subject_id, field="export.json",
                               context=context, value=json.dumps(document, ensure_ascii=False)),
        html_doc=encrypt_field(session, keyring, subject_id=dsr.subject_id, field="export.html",
                               context=context, value=page)))
    return {"records": len(document["records"]), "consent_events": len(document["consent"]),
            "reads": len(document["access_log"])}


def read(session: Session, keyring: Keyring, export: DsrExport, fmt: str) -> str:
    token = export.json_doc if fmt == "json" else export.html_doc
    return decrypt_field(session, keyring, subject_id=export.subject_id, field=f"export.{fmt}",
                         context=f"dsr:{export.dsr_id}", token=token)


def for_download(session: Session, keyring: Keyring, dsr: DsrRequest, fmt: str) -> str | None:
    """The request's export in `fmt` while its download window lasts; None when it has none
    (not ready, expired, or the subject was erased). The caller checks who asks, and audits."""
    stored = session.get(DsrExport, dsr.id)
    if stored is None or stored.expires_at <= utcnow():
        return None
    return read(session, keyring, stored, fmt)
