"""Reading the policy directory once at start-up.

The version of a policy is the SHA-256 of its files (names and bytes, in name order), so the same
files give the same version on every node, and any edit gives a new one. Every audit entry carries
the version in force.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class PolicyError(Exception):
    """A policy file cannot be used; the message names the file, the path inside it and why."""

    def __init__(self, file: Path, path: str, reason: str):
        super().__init__(f"{file}: {path}: {reason}")
        self.file, self.path, self.reason = file, path, reason


@dataclass(frozen=True)
class PolicyFiles:
    directory: Path
    version: str
    documents: dict[str, Any] = field(repr=False)


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def read_policy_files(directory: Path) -> PolicyFiles:
    if not directory.is_dir():
        raise PolicyError(directory, "", "policy directory does not exist (PGW_POLICY_DIR)")
    digest = hashlib.sha256()
    documents: dict[str, Any] = {}
    for path in policy_files(directory):
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        try:
            documents[path.stem] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else "(file)"
            raise PolicyError(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}")\
                from None
    return PolicyFiles(directory=directory, version=digest.hexdigest()[:16], documents=documents)
