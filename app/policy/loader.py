"""Reading the policy directory once at start-up.

Each `*.yaml` file holds one or more sections (categories, purposes, record_types, roles,
jurisdictions, schedules); together they must define each section exactly once (schedules has
defaults). A bad file stops the service with the file, the path inside it and the reason.

The version of a policy is the SHA-256 of its files (names and bytes, in name order), so the same
files give the same version on every node, and any edit gives a new one. Every audit entry
carries the version in force.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.errors import Invalid
from app.policy.models import PolicyBody, PolicyFile, Purpose

SECTIONS = tuple(PolicyBody.model_fields)


class PolicyError(Exception):
    """A policy file cannot be used; the message names the file, the path inside it and why."""

    def __init__(self, file: Path, path: str, reason: str):
        super().__init__(f"{file}: {path or '(file)'}: {reason}")
        self.file, self.path, self.reason = file, path, reason


@dataclass(frozen=True)
class Policy:
    directory: Path
    version: str
    body: PolicyBody

    def purpose(self, name: str) -> Purpose:
        """The purpose called `name`, or a 422 naming the purposes there are."""
        found = self.body.purposes.get(name)
        if found is None:
            raise Invalid(f"unknown purpose {name!r}", field="purpose",
                          supported=sorted(self.body.purposes))
        return found


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def _parse(path: Path, raw: bytes) -> PolicyFile:
    try:
        document: Any = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}")\
            from None
    if not isinstance(document, dict):
        raise PolicyError(path, "", "a policy file is a mapping of sections: "
                                    f"{', '.join(SECTIONS)}")
    try:
        return PolicyFile.model_validate(document)
    except ValidationError as exc:
        # A misspelt key shows as "unknown key" and as the real key "missing": name the typo.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        location = ".".join(str(part) for part in error["loc"])
        reason = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise PolicyError(path, location, reason) from None


def _check_references(body: PolicyBody, owner: dict[str, Path]) -> None:
    for type_name, record_type in body.record_types.items():
        for field_name, field in record_type.fields.items():
            where = f"record_types.{type_name}.fields.{field_name}"
            if field.category not in body.categories:
                raise PolicyError(owner["record_types"], f"{where}.category",
                                  f"unknown category {field.category!r}")
            for purpose in field.purposes:
                if purpose not in body.purposes:
                    raise PolicyError(owner["record_types"], f"{where}.purposes",
                                      f"unknown purpose {purpose!r}")
        if record_type.dataset is not None:
            spec = record_type.dataset
            for name in (*spec.direct_identifiers, *spec.quasi_identifiers, *spec.sensitive):
                if name not in record_type.fields:
                    raise PolicyError(owner["record_types"], f"record_types.{type_name}.dataset",
                                      f"unknown field {name!r}")
    for role_name, role in body.roles.items():
        for category, by_purpose in role.access.items():
            where = f"roles.{role_name}.access.{category}"
            if category not in body.categories:
                raise PolicyError(owner["roles"], where, f"unknown category {category!r}")
            for purpose in by_purpose:
                if purpose != "*" and purpose not in body.purposes:
                    raise PolicyError(owner["roles"], f"{where}.{purpose}",
                                      f"unknown purpose {purpose!r}")


def load_policy(directory: Path) -> Policy:
    if not directory.is_dir():
        raise PolicyError(directory, "", "policy directory does not exist (PGW_POLICY_DIR)")
    digest = hashlib.sha256()
    sections: dict[str, Any] = {}
    owner: dict[str, Path] = {}
    for path in policy_files(directory):
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        parsed = _parse(path, raw)
        for section in SECTIONS:
            value = getattr(parsed, section)
            if value is None:
                continue
            if section in sections:
                raise PolicyError(path, section, f"already defined in {owner[section].name}")
            sections[section], owner[section] = value, path
    for section in SECTIONS:
        if section not in sections and PolicyBody.model_fields[section].is_required():
            raise PolicyError(directory, section, "no policy file defines this section")
    body = PolicyBody(**sections)
    _check_references(body, owner)
    return Policy(directory=directory, version=digest.hexdigest()[:16], body=body)


def json_schema() -> dict[str, Any]:
    """JSON Schema of one policy file, for editors."""
    return PolicyFile.model_json_schema()
