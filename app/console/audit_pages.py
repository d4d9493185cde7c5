"""The audit log: search, an entry's details, and the material for the browser to verify the
entry itself (inclusion proof, signed checkpoint, the log's public key); static/verify.js does
the checking with Web Crypto, so the auditor need not trust this server's word."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from app.audit import service as audit
from app.audit import tree
from app.audit.router import seq_cursor, tree_read
from app.auth.scopes import Scope
from app.console.guard import TEMPLATES, ConsoleRoute, Needs
from app.console.sessions import Staff
from app.deps import RuntimeDep, SessionDep, audit_signer
from app.errors import Conflict, Invalid, NotFound
from app.schemas import encode_cursor
from app.web import pages

router = APIRouter(prefix="/console/audit", route_class=ConsoleRoute, include_in_schema=False)
Auditor = Annotated[Staff, Depends(Needs(Scope.AUDIT_READ))]
Text = Annotated[str | None, Query(max_length=255)]
MAX_SEQ = 2**62


def _moment(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name}: give a date and time such as 2026-11-28T09:00", field=name) \
            from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("", response_class=HTMLResponse)
def search(request: Request, staff: Auditor, session: SessionDep,
           subject_id: Text = None, actor: Text = None, action: Text = None,
           since: Text = None, until: Text = None,
           cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    given = {k: v.strip() or None if v else None for k, v in
             (("subject_id", subject_id), ("actor", actor), ("action", action))}
    start, end = _moment("since", since), _moment("until", until)
    after = seq_cursor(cursor)  # a malformed one is a 422 naming `cursor`, as in the API
    audit.catch_up(session)
    entries = audit.list_entries(session, since=start, until=end, after_seq=after, limit=100,
                                 subject_id=given["subject_id"], actor=given["actor"],
                                 action=given["action"])
    audit.record(session, caller=staff.caller, action="audit.read",
                 details={"returned": len(entries), "via": "console",
                          "filters": sorted(k for k, v in {**given, "since": start,
                                                          "until": end}.items() if v)})
    shown = [audit.entry_dict(e) for e in entries]
    query = {**{k: v for k, v in given.items() if v}, "since": since or "", "until": until or ""}
    following = encode_cursor(str(shown[-1]["seq"])) if len(shown) == 100 else None
    return pages.render(TEMPLATES, request, "audit.html", staff=staff, entries=shown,
                        query=query, following=following)


def _entry(session: SessionDep, seq: int) -> dict[str, Any]:
    found = audit.entries_after(session, after_seq=seq - 1, up_to=seq, limit=1)
    if not found:
        raise NotFound(f"there is no audit entry {seq}")
    return audit.entry_dict(found[0])


@router.get("/{seq}", response_class=HTMLResponse)
def entry(request: Request, seq: Annotated[int, PathParam(ge=1, le=MAX_SEQ)], staff: Auditor,
          session: SessionDep) -> Response:
    audit.catch_up(session)
    shown = _entry(session, seq)
    audit.record(session, caller=staff.caller, action="audit.read",
                 details={"returned": 1, "seq": seq, "via": "console"})
    return pages.render(TEMPLATES, request, "audit_entry.html", staff=staff, entry=shown)


@router.get("/{seq}/proof.json")
def proof(seq: Annotated[int, PathParam(ge=1, le=MAX_SEQ)], staff: Auditor,
          session: SessionDep, runtime: RuntimeDep) -> Response:
    """The entry, its inclusion proof in the latest signed tree covering it, that tree's signed
    note and the log's public key: everything the page checks, nothing it takes on trust."""
    signer = audit_signer(runtime)
    audit.catch_up(session)
    checkpoint = tree.latest_checkpoint(session)
    if checkpoint is None or checkpoint.size < seq:
        try:
            checkpoint = audit.create_checkpoint(session, at_most_every=5.0)
        except audit.CheckpointUnavailable:
            raise Conflict(f"entry {seq} is not in a signed checkpoint yet; try again in a "
                           "few seconds") from None
    if checkpoint is None or checkpoint.size < seq:
        raise NotFound(f"there is no audit entry {seq}")
    shown = _entry(session, seq)
    with tree_read():  # a node gone or garbled: the API's problem, not a bare 500
        path = tree.inclusion_proof(session, seq=seq, size=checkpoint.size)
    audit.record(session, caller=staff.caller, action="audit.read",
                 details={"returned": 1, "proof": "inclusion", "seq": seq, "via": "console"})
    body = {"entry": shown, "tree_size": checkpoint.size, "proof": [p.hex() for p in path],
            "checkpoint": checkpoint.note or "", "public_key": signer.public_pem(),
            "key_id": signer.key_id}
    # Written by the json module as the entry hash's canonical form is: the page hashes the
    # numbers as sent (1e-07, 1.0), and another serializer would spell them differently.
    return Response(json.dumps(body, ensure_ascii=False, allow_nan=False),
                    media_type="application/json")
