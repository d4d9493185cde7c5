"""Records of processing (GDPR art. 30; the processing records PIPL art. 56 asks to keep),
written from the policy itself so that they always describe what the gateway enforces."""

from __future__ import annotations

from typing import Any

from app.policy.loader import Policy


def processing_records(policy: Policy) -> dict[str, Any]:
    body = policy.body
    activities = []
    for purpose_id, purpose in body.purposes.items():
        collected: list[dict[str, Any]] = []
        for type_id, record_type in body.record_types.items():
            for field_id, field in record_type.fields.items():
                if purpose_id not in field.purposes:
                    continue
                retention = field.retention or record_type.retention
                collected.append({
                    "record_type": type_id, "field": field_id, "category": field.category,
                    "sensitive": field.sensitive, "protection": field.protection,
                    "retention_days": retention.days, "retention_trigger": retention.trigger.value,
                    "retention_action": retention.action.value,
                })
        activities.append({
            "purpose": purpose_id,
            "description": purpose.description.model_dump(),
            "legal_basis": purpose.legal_basis.value,
            "separate_consent": purpose.separate_consent,
            "categories": sorted({str(c["category"]) for c in collected}),
            "sensitive_data": any(c["sensitive"] for c in collected),
            "recipients": purpose.third_party_recipients,
            "cross_border_transfer": purpose.cross_border_transfer,
            "ccpa_sale_or_sharing": purpose.ccpa_sale_or_sharing,
            "consent_lifetime_days": purpose.consent_lifetime_days,
            "data": collected,
        })
    return {"policy_version": policy.version, "activities": activities,
            "roles": sorted(body.roles), "jurisdictions": sorted(body.jurisdictions)}


def to_markdown(records: dict[str, Any]) -> str:
    lines = ["# Records of processing activities",
             "",
             f"Policy version `{records['policy_version']}`. Generated from the policy the "
             "gateway enforces (GDPR art. 30; PIPL art. 56).",
             ""]
    for activity in records["activities"]:
        lines += [f"## {activity['purpose']}", "",
                  f"{activity['description']['en']} / {activity['description']['zh']}", "",
                  f"- Legal basis: {activity['legal_basis']}",
                  f"- Separate consent: {'yes' if activity['separate_consent'] else 'no'}",
                  f"- Categories: {', '.join(activity['categories']) or 'none'}",
                  f"- Sensitive personal information: "
                  f"{'yes' if activity['sensitive_data'] else 'no'}",
                  f"- Recipients: {', '.join(activity['recipients']) or 'none'}",
                  f"- Cross-border transfer: "
                  f"{'yes' if activity['cross_border_transfer'] else 'no'}",
                  f"- Sale or sharing (CCPA): "
                  f"{'yes' if activity['ccpa_sale_or_sharing'] else 'no'}"]
        if activity["consent_lifetime_days"]:
            lines.append(f"- Consent valid for: {activity['consent_lifetime_days']} days")
        lines += ["", "| record type | field | category | protection | retention |",
                  "|---|---|---|---|---|"]
        for item in activity["data"]:
            flag = " (sensitive)" if item["sensitive"] else ""
            lines.append(f"| {item['record_type']} | {item['field']} | {item['category']}{flag} "
                         f"| {item['protection']} | {item['retention_days']} days from "
                         f"{item['retention_trigger'].replace('_', ' ')}, then "
                         f"{item['retention_action']} |")
        lines.append("")
    return "\n".join(lines)
