"""`pgw records import FILE`: backfill records from JSON Lines or CSV.

Batches go through the same function as `POST /v1/records/batch` (`batch.create_many`), in
process against the database like the other operator commands: no token to mint and no
network hop, and each record is audited with the operator as its writer. Each batch carries an
idempotency key made of the file's SHA-256 and the batch's first line, and progress is kept in a
state file next to the input (`FILE.pgw-import.json`): a rerun after a crash resumes after the
last committed batch, and a batch that committed before its progress was saved is replayed,
not stored again. Rerun with the same `--operator`: idempotency keys belong to their caller.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.config import Settings
from app.operator import add_common, emit_json, guarded, operator, transaction
from app.progress import bar

DEFAULT_BATCH = 500
FIXED_COLUMNS = ("subject_id", "purpose", "record_type")
Entry = tuple[int, Any]  # line number, item (or the error text of an unreadable line)


class Unreadable(str):
    """A line that could not be read as an item."""


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_jsonl(path: Path) -> Iterator[Entry]:
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError:
                yield number, Unreadable("line is not JSON")


def read_csv(path: Path) -> Iterator[Entry]:
    """A header row; subject_id, purpose, record_type, and one column per data field (an empty
    cell leaves the field out). Values are strings: numbers and booleans need JSON Lines."""
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        missing = [c for c in FIXED_COLUMNS if c not in (reader.fieldnames or [])]
        for row in reader:
            if missing:
                yield reader.line_num, Unreadable(f"the header lacks {', '.join(missing)}")
                continue
            yield reader.line_num, {
                **{c: row[c] for c in FIXED_COLUMNS},
                "data": {k: v for k, v in row.items()
                         if k not in FIXED_COLUMNS and k is not None and v not in (None, "")}}


def state_path(path: Path) -> Path:
    return path.with_name(path.name + ".pgw-import.json")


def _load_state(path: Path, digest: str) -> dict[str, Any]:
    fresh = {"sha256": digest, "next_line": 1, "created": 0, "failed": []}
    state_file = state_path(path)
    if not state_file.exists():
        return fresh
    state: dict[str, Any] = json.loads(state_file.read_text(encoding="utf-8"))
    return state if state.get("sha256") == digest else fresh


def _save_state(path: Path, state: dict[str, Any]) -> None:
    target = state_path(path)
    partial = target.with_name(target.name + ".tmp")
    partial.write_text(json.dumps(state), encoding="utf-8")
    partial.replace(target)  # atomic: a crash leaves the old state or the new one


def _batches(entries: list[Entry], size: int) -> Iterator[list[Entry]]:
    for first in range(0, len(entries), size):
        yield entries[first:first + size]


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from app import idempotency
    from app.errors import Invalid
    from app.records import batch, service
    from app.runtime import opened

    path: Path = args.file
    kind = args.format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if not path.is_file():
        raise Invalid(f"no such file: {path}", field="FILE")
    if not 1 <= args.batch_size <= batch.MAX_ITEMS:
        raise Invalid(f"--batch-size must be 1 to {batch.MAX_ITEMS}", field="--batch-size")
    digest = file_digest(path)
    state = _load_state(path, digest)
    if args.resume_from is not None:
        state = {"sha256": digest, "next_line": args.resume_from, "created": 0, "failed": []}
    entries = list(read_csv(path) if kind == "csv" else read_jsonl(path))
    todo = [e for e in entries if e[0] >= state["next_line"]]
    caller = operator(args)
    done = len(entries) - len(todo)
    with opened(settings, need_keys=True) as runtime:
        keys = service.Keys(keyring=runtime.require_keyring(), hash_key=runtime.pii_hash_key,
                            scan=lambda text: [])  # batches scan through batch.scan_all
        for chunk in _batches(todo, args.batch_size):
            items = [item for _, item in chunk if not isinstance(item, Unreadable)]
            lines = [line for line, item in chunk if not isinstance(item, Unreadable)]
            state["failed"] += [{"line": line, "problem": {"title": "Unreadable line",
                                                           "detail": str(item)}}
                                for line, item in chunk if isinstance(item, Unreadable)]
            if items:
                prepared = batch.prepare(runtime.policy, settings, items)
                # by the batch's first line, so a rerun's batch has the key it had before
                # (another --batch-size gives another body: refused, never stored twice)
                key = f"import:{digest[:40]}:line:{chunk[0][0]}"
                with transaction(runtime) as session:
                    claimed = idempotency.begin(
                        session, caller=caller, key=key, route=batch.ROUTE,
                        body={"records": items}, settings=settings, keyring=keys.keyring)
                    result = claimed.response if claimed and claimed.response else \
                        batch.create_many(session, runtime.policy, keys, caller=caller,
                                          prepared=prepared)
                    if claimed is not None and claimed.response is None:
                        idempotency.remember(claimed, 200, result)
                state["created"] += result["created"]
                state["failed"] += [{"line": lines[r["index"]], "problem": r["problem"]}
                                    for r in result["results"] if r["status"] == "error"]
            state["next_line"] = chunk[-1][0] + 1
            _save_state(path, state)
            done += len(chunk)
            if not args.json:
                bar(done, len(entries))
    if not args.json:
        sys.stderr.write("\n")
    _report(args, path, state)
    return 1 if state["failed"] else 0


def _report(args: argparse.Namespace, path: Path, state: dict[str, Any]) -> None:
    summary = {"file": str(path), "created": state["created"], "failed": state["failed"],
               "next_line": state["next_line"]}
    if args.json:
        emit_json(summary)
        return
    print(f"{state['created']} created, {len(state['failed'])} failed")  # noqa: T201
    for failure in state["failed"]:
        problem = failure["problem"]
        print(f"  line {failure['line']}: {problem.get('title')}: "  # noqa: T201
              f"{problem.get('detail')}")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    records = commands.add_parser("records", help="stored customer records")
    sub = records.add_subparsers(dest="records_command", required=True)
    load = sub.add_parser("import", help="store records from a JSON Lines or CSV file, "
                                         "in batches, resumably")
    load.add_argument("file", type=Path)
    load.add_argument("--format", choices=("jsonl", "csv"),
                      help="default: by the file's extension (.csv, else JSON Lines)")
    load.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    load.add_argument("--resume-from", type=int, metavar="LINE",
                      help="start at this line, ignoring the saved progress")
    add_common(load)
    load.set_defaults(handler=guarded(_import))
