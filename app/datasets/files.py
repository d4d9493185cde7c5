"""Rows in and out as CSV or JSON Lines, for uploads, downloads and the command line."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from app.errors import Invalid, PayloadTooLarge

Format = Literal["csv", "jsonl"]
MEDIA_TYPES: dict[str, Format] = {"text/csv": "csv", "application/x-ndjson": "jsonl",
                                  "application/jsonl": "jsonl"}
MEDIA_TYPE_OF: dict[Format, str] = {"csv": "text/csv; charset=utf-8",
                                    "jsonl": "application/x-ndjson"}
# a spreadsheet runs a cell starting with one of these as a formula (CSV injection)
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def format_of_media_type(value: str | None) -> Format | None:
    """The row format a Content-Type or Accept value names, if it names one."""
    if not value:
        return None
    for part in value.split(","):
        media = part.split(";")[0].strip().lower()
        if media in MEDIA_TYPES:
            return MEDIA_TYPES[media]
    return None


def format_of_path(path: Path) -> Format:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def parse(text: str, fmt: Format) -> list[dict[str, Any]]:
    """Rows from CSV (a header line, then one record per line) or JSON Lines (one object per
    line); an error names the line."""
    return rows_of(io.StringIO(text, newline=""), fmt)


def rows_of(lines: Iterable[str], fmt: Format, *, fields: Collection[str] | None = None,
            max_rows: int | None = None) -> list[dict[str, Any]]:
    """Rows read line by line, each keeping only `fields` (all when None), stopping at the
    first row over `max_rows`: an upload is never held whole, nor its unused columns."""
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        if max_rows is not None and len(rows) >= max_rows:
            raise PayloadTooLarge(f"the upload has more than {max_rows} rows (the limit per "
                                  "upload)", headers={"connection": "close"})
        rows.append(row)

    if fmt == "csv":
        _csv_rows(lines, fields, add)
        return rows
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise Invalid(f"line {number} is not JSON", field="rows") from None
        if not isinstance(row, dict):
            raise Invalid(f"line {number} is not a JSON object", field="rows")
        add(row if fields is None else {k: v for k, v in row.items() if k in fields})
    return rows


def _csv_rows(lines: Iterable[str], fields: Collection[str] | None,
              add: Callable[[dict[str, Any]], None]) -> None:
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        kept = [(i, name) for i, name in enumerate(header) if fields is None or name in fields]
        for cells in reader:
            if not cells:
                continue  # a blank line
            if len(cells) > len(header):
                raise Invalid(f"line {reader.line_num} has more cells than the header",
                              field="rows")
            add({name: cells[i] for i, name in kept if i < len(cells)})
    except csv.Error as exc:
        raise Invalid(f"line {reader.line_num}: {exc}", field="rows") from None


def _cell(value: Any) -> Any:
    if isinstance(value, str) and _FORMULA.match(value) and not _NUMBER.match(value):
        return "'" + value
    return value


def render(rows: Sequence[dict[str, Any]], fmt: Format) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    out = io.StringIO(newline="")
    names = list(dict.fromkeys(name for row in rows for name in row))
    writer = csv.DictWriter(out, fieldnames=names)
    writer.writeheader()
    writer.writerows({name: _cell(value) for name, value in row.items()} for row in rows)
    return out.getvalue()


def read(path: Path) -> list[dict[str, Any]]:
    return parse(path.read_text(encoding="utf-8-sig"), format_of_path(path))


def write(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.write_text(render(rows, format_of_path(path)), encoding="utf-8", newline="")
