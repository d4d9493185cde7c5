"""The export file: JSON Lines an auditor verifies with nothing but it and the public key.

Line 1 is a header, then every signed checkpoint, then every entry in sequence order. An export
always ends on a checkpoint made for it, so every entry in it is covered by a signature: removing
lines at the end, or rewriting entries and their hashes, is detected (`verifier.verify_export`).
"""

from __future__ import annotations

import json
from typing import Any

from app.audit.verifier import EXPORT_FORMAT

VERSION = 1


def header_line(*, size: int, head: str, key_id: str | None) -> str:
    return _line({"type": "header", "format": EXPORT_FORMAT, "version": VERSION,
                  "entries": size, "head": head, "key_id": key_id})


def checkpoint_line(checkpoint: dict[str, Any]) -> str:
    return _line({"type": "checkpoint", **checkpoint})


def entry_line(entry: dict[str, Any]) -> str:
    return _line({"type": "entry", **entry})


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"
