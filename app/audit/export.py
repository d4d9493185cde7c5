"""The export file, and streaming it: JSON Lines an auditor verifies with nothing but it and
the public key.

Line 1 is a header, then every signed checkpoint, then the entries in sequence order up to the
newest checkpoint: one made for the export where this process may sign, else the latest the
sequencer signed (entries after it are left out). Every entry in it is covered by a signature:
removing lines at the end, or rewriting entries and their hashes, is detected
(`verifier.verify_export`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit import tree, verifier
from app.audit.verifier import EXPORT_FORMAT
from app.auth.guard import Caller

logger = logging.getLogger("pgw.audit")

VERSION = 1
PAGE = 500  # entries per page of an export; a page is about 250 KB


def header_line(*, size: int, head: str, key_id: str | None) -> str:
    return _line({"type": "header", "format": EXPORT_FORMAT, "version": VERSION,
                  "entries": size, "head": head, "key_id": key_id})


def checkpoint_line(checkpoint: dict[str, Any]) -> str:
    return _line({"type": "checkpoint", **checkpoint})


def entry_line(entry: dict[str, Any]) -> str:
    return _line({"type": "entry", **entry})


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def prepare_export(session: Session, *, caller: Caller) -> tuple[int, str]:
    """Sign the tree for an export (or, where the sequencer signs, take its latest checkpoint)
    and audit it; returns the (size, head) the export covers."""
    try:
        checkpoint = audit.create_checkpoint(session)
    except audit.CheckpointUnavailable:
        audit.catch_up(session)
        checkpoint = tree.latest_checkpoint(session)
    size, head_hash = (checkpoint.size, checkpoint.head) if checkpoint else (
        0, verifier.GENESIS_HASH)
    audit.record(session, caller=caller, action="audit.exported", details={"entries": size})
    return size, head_hash


def export_chunks(read_session: Callable[[], Session], *, size: int, head_hash: str,
                  key_id: str, page_size: int = PAGE,
                  progress: Callable[[int, int], None] | None = None) -> Iterator[str]:
    """The export file (header, checkpoints up to `size`, entries up to `size`) in chunks of
    whole lines, one chunk per page of the log.

    Each page is read in a short transaction of its own, whose connection is back in the pool
    before the page is yielded: a client that stops reading holds one page, never a connection.
    Rows up to `size` never change, so the pages need no common snapshot. The header goes out
    with the first page, so an export the database cuts short always fails verification.
    """
    header = header_line(size=size, head=head_hash, key_id=key_id)
    done = 0
    try:
        for page in _pages(read_session, lambda session, after, limit: [
                audit.checkpoint_dict(c) for c in audit.list_checkpoints(
                    session, after_size=after, up_to=size, limit=limit)],
                key="size", page_size=page_size):
            yield header + "".join(checkpoint_line(c) for c in page)
            header = ""
        if header:  # an empty log has no checkpoint
            yield header
        for page in _pages(read_session, lambda session, after, limit: [
                audit.entry_dict(e) for e in audit.entries_after(
                    session, after_seq=after, up_to=size, limit=limit)],
                key="seq", page_size=page_size):
            yield "".join(entry_line(entry) for entry in page)
            done = page[-1]["seq"]
            if progress is not None:
                progress(done, size)
    except SQLAlchemyError as exc:
        # The caller aborts the transfer; what the client got ends early and fails verification.
        logger.error("audit export of %d entries stopped after entry %d: database error %s",
                     size, done, type(exc).__name__)
        raise


def _pages(read_session: Callable[[], Session],
           read: Callable[[Session, int, int], list[dict[str, Any]]], *, key: str,
           page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Keyset pages on `key`; each read's session is closed before its page is yielded."""
    after = 0
    while True:
        with read_session() as session:
            page = read(session, after, page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
        after = page[-1][key]
