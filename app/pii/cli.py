"""`pgw pii scan|redact FILE`: JSON Lines in, one JSON line out per input line, in order."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

from app.config import Settings
from app.runtime import load_hash_key

# spaCy, Presidio and the Chinese model are imported by the handlers, not when `pgw` starts.

CHUNK = 64
_worker: dict[str, Any] = {}


def _init(model: str, mode: str, specs: dict[str, Any], hash_key: bytes | None) -> None:
    from app.pii import operators
    from app.pii import service as pii
    from app.pii.schemas import OperatorSpec

    _worker.update(engine=pii.get_engine(model), mode=mode,
                   specs={k: OperatorSpec(**v) for k, v in specs.items()},
                   context=operators.OperatorContext(hash_key=hash_key))


def _parse(line: str) -> tuple[str, str] | str:
    """(text, language) of one input line, or why it cannot be processed."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError:
        return "line is not JSON"
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return 'line needs a "text" string'
    language = item.get("language", "auto")
    try:
        _worker["engine"].check(language=language)
    except (ValueError, TypeError) as exc:  # UnsupportedValue is a ValueError
        return str(exc)
    return item["text"], language


def _process(lines: list[str]) -> list[str]:
    from app.pii import operators
    from app.pii import service as pii

    parsed = [_parse(line) for line in lines]
    good = [p for p in parsed if isinstance(p, tuple)]
    results = iter(_worker["engine"].analyze_batch([t for t, _ in good],
                                                   languages=[lang for _, lang in good]))
    out: list[dict[str, Any]] = []
    for item in parsed:
        if isinstance(item, str):
            out.append({"error": item})
            continue
        language, findings = next(results)
        entities = [{"type": f.type, "start": f.start, "end": f.end, "score": f.score,
                     "recognizer": f.recognizer} for f in findings]
        if _worker["mode"] == "scan":
            out.append({"language": language, "entities": entities})
            continue
        try:
            redaction = pii.redact(item[0], findings, _worker["specs"], _worker["context"])
        except operators.OperatorError as exc:
            out.append({"error": str(exc)})
            continue
        out.append({"language": language, "text": redaction.text, "entities": entities})
    return [json.dumps(o, ensure_ascii=False) for o in out]


def _chunks(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8") as handle:
        lines = (line.rstrip("\n") for line in handle if line.strip())
        while chunk := list(islice(lines, CHUNK)):
            yield chunk


def _run(args: argparse.Namespace, settings: Settings, mode: str) -> int:
    specs = json.loads(args.operators) if mode == "redact" else {}
    hash_key = load_hash_key(settings) if mode == "redact" else None
    init_args = (settings.nlp_model_en, mode, specs, hash_key)
    errors = 0
    progress = _progress(args)
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, initializer=_init, initargs=init_args) as pool:
            batches = pool.map(_process, _chunks(args.file))
            errors = _write(batches, progress)
    else:
        _init(*init_args)
        errors = _write(map(_process, _chunks(args.file)), progress)
    if errors:
        print(f"pgw: {errors} line(s) could not be processed", file=sys.stderr)  # noqa: T201
    return 1 if errors else 0


def _progress(args: argparse.Namespace) -> Callable[[int], None] | None:
    """A bar over the file's lines (counted first, which costs little next to scanning)."""
    from app import progress

    if not progress.wanted(args.progress):
        return None
    with args.file.open(encoding="utf-8") as handle:
        total = sum(1 for line in handle if line.strip())
    show = progress.reporter(True)
    show(0, total)
    return lambda done: show(done, total)


def _write(batches: Iterator[list[str]],
           progress: Callable[[int], None] | None = None) -> int:
    errors = done = 0
    for batch in batches:
        for line in batch:
            errors += line.startswith('{"error"')
            sys.stdout.write(line + "\n")
        done += len(batch)
        if progress is not None:
            sys.stdout.flush()
            progress(done)
    sys.stdout.flush()
    return errors


def register(commands: Any) -> None:
    parser = commands.add_parser("pii", help="scan or redact JSON Lines files")
    sub = parser.add_subparsers(dest="pii_command", required=True)
    for mode in ("scan", "redact"):
        command = sub.add_parser(mode, help=f"{mode} each line's text; results on stdout")
        command.add_argument("file", type=Path, help='JSON Lines: {"text", "language"?}')
        command.add_argument("--workers", type=int, default=1, help="processes to spread over")
        command.add_argument("--progress", action="store_true",
                             help="a progress bar on stderr (default: when it is a terminal)")
        if mode == "redact":
            command.add_argument("--operators", default='{"DEFAULT": {"type": "replace"}}',
                                 help='JSON, e.g. {"DEFAULT": {"type": "mask"}}')
        command.set_defaults(handler=lambda a, s, m=mode: _run(a, s, m))
