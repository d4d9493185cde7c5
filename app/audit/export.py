"""The export file: JSON Lines an auditor verifies with nothing but it and the public key.

Line 1 is a header, then every signed checkpoint, then every entry in sequence order. An export
always ends on a checkpoint made for it, so every entry in it is covered by a signature: removing
lines at the end, or rewriting entries and their hashes, is detected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.audit import chain

FORMAT = "pgw-audit-export"
VERSION = 1


def header_line(*, size: int, head: str, key_id: str | None) -> str:
    return _line({"type": "header", "format": FORMAT, "version": VERSION, "entries": size,
                  "head": head, "key_id": key_id})


def checkpoint_line(checkpoint: dict[str, Any]) -> str:
    return _line({"type": "checkpoint", **checkpoint})


def entry_line(entry: dict[str, Any]) -> str:
    return _line({"type": "entry", **entry})


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


class ExportFormatError(ValueError):
    pass


def verify_export(lines: Iterable[str], public_key: Ed25519PublicKey) -> chain.Verification:
    """Verify an export offline: the chain, every checkpoint signature, and full coverage."""
    stream = iter(lines)
    header = _parse(next(stream, ""), 1)
    if header.get("type") != "header" or header.get("format") != FORMAT:
        raise ExportFormatError("line 1 is not a pgw audit export header")
    checkpoints: list[dict[str, Any]] = []
    first_entry: dict[str, Any] | None = None
    line_no = 1
    for line_no, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        item = _parse(line, line_no)
        if item.get("type") == "checkpoint":
            checkpoints.append(item)
            continue
        first_entry = item
        break

    def entries() -> Iterator[dict[str, Any]]:
        if first_entry is None:
            return
        yield first_entry
        for number, line in enumerate(stream, start=line_no + 1):
            if line.strip():
                yield _parse(line, number)

    result = chain.verify(entries(), checkpoints, public_key)
    if result.ok:
        covered = max((int(c["size"]) for c in checkpoints), default=0)
        if covered < result.entries:
            result.ok = False
            result.first_bad_seq = covered + 1
            result.reason = (f"entries {covered + 1} to {result.entries} are not covered by a "
                             "signed checkpoint")
    return result


def _parse(line: str, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        raise ExportFormatError(f"line {number} is not JSON") from None
    if not isinstance(value, dict):
        raise ExportFormatError(f"line {number} is not a JSON object")
    return value
