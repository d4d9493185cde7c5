from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from app.audit import export, log_check, tree
from app.audit import service as audit
from app.audit.models import AuditCheckpoint
from app.audit.schemas import (
    AuditEntryOut,
    AuditPage,
    CheckpointOut,
    CheckpointPage,
    ConsistencyProofOut,
    InclusionProofOut,
    VerificationOut,
)
from app.audit.service import Outcome
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.deps import RuntimeDep, SessionDep, SettingsDep, SignerDep, audit_signer
from app.errors import (
    AuditLogDamaged,
    Conflict,
    Invalid,
    NotFound,
    ServiceUnavailable,
    problems,
)
from app.runtime import Runtime
from app.schemas import IsoDateTime, decode_cursor, encode_cursor

logger = logging.getLogger("pgw.audit")

router = APIRouter(prefix="/v1/audit", tags=["audit"])
AuditReader = Annotated[Caller, Depends(RequireScope(Scope.AUDIT_READ))]
MAX_PAGE = 1000
MAX_SEQ = 2**62  # far beyond any log; keeps sizes inside a BIGINT


def seq_cursor(value: str | None) -> int:
    """The sequence number (or tree size) an opaque cursor stands for; 0 without one."""
    key = decode_cursor(value)
    if key is None:
        return 0
    if not key.isdigit() or len(key) > 18:
        raise Invalid("cursor is not one this API gave (use the `next` of the page before)",
                      field="cursor")
    return int(key)


@router.get("", response_model=AuditPage)
def list_audit(
    session: SessionDep, caller: AuditReader,
    since: IsoDateTime | None = None, until: IsoDateTime | None = None,
    actor: str | None = Query(default=None, max_length=255),
    action: str | None = Query(default=None, max_length=100),
    subject_id: str | None = Query(default=None, max_length=255),
    outcome: Outcome | None = None,
    cursor: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
) -> AuditPage:
    """Entries in sequence order, filtered; follow `next` for the next page."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid("give a time zone, for example 2026-01-01T00:00:00Z", field=name)
    audit.catch_up(session)
    entries = audit.list_entries(session, since=since, until=until, actor=actor, action=action,
                                 subject_id=subject_id, outcome=outcome,
                                 after_seq=seq_cursor(cursor), limit=limit)
    filters = [name for name, value in (("since", since), ("until", until), ("actor", actor),
               ("action", action), ("subject_id", subject_id), ("outcome", outcome))
               if value is not None]
    audit.record(session, caller=caller, action="audit.read",
                 details={"returned": len(entries), "filters": filters})
    following = encode_cursor(str(entries[-1].seq)) if len(entries) == limit else None
    return AuditPage(items=[AuditEntryOut(**audit.entry_dict(e)) for e in entries],
                     next=following)


@router.get("/verify", response_model=VerificationOut)
def verify_audit(session: SessionDep, caller: AuditReader, runtime: RuntimeDep) -> VerificationOut:
    """Recompute the whole chain and check every signed checkpoint."""
    audit.catch_up(session)
    session.commit()  # what catch_up integrated, before the read below
    # a long read in a read-only transaction of its own: no write waits behind it on SQLite
    with runtime.read_session_factory() as reading:
        result = log_check.verify_log(reading, signer=runtime.audit_signer)
    audit.record(session, caller=caller, action="audit.verified",
                 outcome=Outcome.ALLOWED,
                 details={"ok": result.ok, "entries": result.entries,
                          "first_bad_seq": result.first_bad_seq})
    return VerificationOut(**result.as_dict())


@router.get("/checkpoints", response_model=CheckpointPage)
def list_checkpoints(
    session: SessionDep, caller: AuditReader,
    cursor: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
) -> CheckpointPage:
    audit.catch_up(session)
    checkpoints = audit.list_checkpoints(session, after_size=seq_cursor(cursor), limit=limit)
    following = encode_cursor(str(checkpoints[-1].size)) if len(checkpoints) == limit else None
    return CheckpointPage(items=[CheckpointOut(**audit.checkpoint_dict(c)) for c in checkpoints],
                          next=following)


@router.post("/checkpoints", response_model=CheckpointOut, status_code=201,
             responses=problems(Conflict, AuditLogDamaged)
             | {204: {"description": "the log is empty"}})
def create_checkpoint(session: SessionDep, caller: AuditReader, signer: SignerDep,
                      settings: SettingsDep) -> CheckpointOut | Response:
    """Sign the current head now (checkpoints are also made every N entries)."""
    try:
        with tree_read():  # explicit and audited (and rate-limited per caller like every route)
            checkpoint = audit.create_checkpoint(session)
    except audit.CheckpointUnavailable as exc:
        raise Conflict(f"not signed now: {exc}; the sequencer signs every "
                       f"{settings.audit_checkpoint_seconds:g} s",
                       headers={"Retry-After": "1"}) from None
    if checkpoint is None:
        return Response(status_code=204)
    audit.record(session, caller=caller, action="audit.checkpoint.created",
                 details={"size": checkpoint.size})
    return CheckpointOut(**audit.checkpoint_dict(checkpoint))


@router.get("/public-key", response_class=PlainTextResponse)
def public_key(caller: AuditReader, signer: SignerDep) -> str:
    """The Ed25519 key that signs checkpoints, for offline verification (PEM)."""
    return signer.public_pem()


@router.get("/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/jsonl": {}}}})
def export_audit(session: SessionDep, caller: AuditReader, signer: SignerDep,
                 runtime: RuntimeDep) -> StreamingResponse:
    """The whole log as JSON Lines, up to the newest checkpoint: one signed for this export
    where this process may sign, else the latest the sequencer signed."""
    size, head = export.prepare_export(session, caller=caller)
    # Read page by page after the request's session has committed (with its audit entry) and
    # closed: a client that stops reading holds no database connection.
    factory: sessionmaker[Session] = runtime.read_session_factory
    return StreamingResponse(
        export.export_chunks(factory, size=size, head_hash=head, key_id=signer.key_id),
        media_type="application/jsonl",
        headers={"Content-Disposition": 'attachment; filename="audit-export.jsonl"'},
    )


@contextmanager
def tree_read() -> Iterator[None]:
    """A proof through a node of the stored tree that is gone or garbled: a problem that says
    so, and an error in the log, not a bare 500."""
    try:
        yield
    except tree.TreeDamaged as exc:
        logger.error("audit proof refused: %s", exc)
        raise AuditLogDamaged(f"{exc}; run `pgw audit verify`") from None


def _signed_tree(session: Session, runtime: Runtime, size: int | None, *,
                 covering: int = 0, field: str = "tree_size",
                 covering_field: str | None = None) -> AuditCheckpoint:
    """The signed checkpoint at `size` (the query parameter `field`), or the latest one
    covering entry `covering` (the query parameter `covering_field`, if it is one; signed now
    if there is none yet)."""
    if size is not None:
        checkpoint = tree.checkpoint_at(session, size)
        if checkpoint is None:
            raise NotFound(f"there is no signed checkpoint at tree size {size}; list them at "
                           "/v1/audit/checkpoints", field=field)
        return checkpoint
    audit_signer(runtime)
    audit.catch_up(session)
    checkpoint = tree.latest_checkpoint(session)
    if checkpoint is None or checkpoint.size < covering:
        if covering > (logged := tree.tree_size(session)):
            if covering_field is not None:
                raise NotFound(f"{covering_field} ({covering}) is larger than the log, which has "
                               f"{logged} entries", field=covering_field)
            raise NotFound("the audit log is empty" if covering == 0
                           else f"there is no audit entry {covering}")
        try:  # a reader may have the tree signed, but not more often than every 5 s
            checkpoint = audit.create_checkpoint(session, at_most_every=5.0)
        except audit.CheckpointUnavailable:
            raise Conflict(f"entry {covering} is not in a signed checkpoint yet; the sequencer "
                           f"signs every {runtime.settings.audit_checkpoint_seconds:g} s or "
                           f"{runtime.settings.audit_checkpoint_every} entries",
                           headers={"Retry-After": "5"}) from None
    if checkpoint is None:
        raise NotFound("the audit log is empty")
    return checkpoint


@router.get("/checkpoint", response_class=PlainTextResponse,
            responses=problems(NotFound, Conflict, ServiceUnavailable)
            | {200: {"content": {"text/plain": {}}}})
def latest_checkpoint(session: SessionDep, caller: AuditReader, runtime: RuntimeDep) -> str:
    """The latest signed checkpoint as a signed note (origin, tree size, base64 root), the
    form witnesses and transparency-log tools read."""
    checkpoint = _signed_tree(session, runtime, None)
    return checkpoint.note or ""


@router.get("/entries/{seq}/proof", response_model=InclusionProofOut,
            responses=problems(NotFound, Conflict, ServiceUnavailable, AuditLogDamaged))
def inclusion_proof(
    session: SessionDep, caller: AuditReader, runtime: RuntimeDep,
    seq: Annotated[int, Path(ge=1, le=MAX_SEQ)],
    tree_size: int | None = Query(default=None, ge=1, le=MAX_SEQ),
) -> InclusionProofOut:
    """Proof that entry `seq` is in the signed tree (the latest, or the one of `tree_size`)."""
    checkpoint = _signed_tree(session, runtime, tree_size, covering=seq)
    if seq > checkpoint.size:
        raise Invalid(f"entry {seq} is not in the tree of {checkpoint.size} entries",
                      field="tree_size")
    entry = audit.entries_after(session, after_seq=seq - 1, up_to=seq, limit=1)
    if not entry:
        raise NotFound(f"there is no audit entry {seq}")
    with tree_read():
        proof = tree.inclusion_proof(session, seq=seq, size=checkpoint.size)
    audit.record(session, caller=caller, action="audit.read",
                 details={"returned": 1, "proof": "inclusion", "seq": seq})
    return InclusionProofOut(entry=AuditEntryOut(**audit.entry_dict(entry[0])),
                             tree_size=checkpoint.size, proof=[p.hex() for p in proof],
                             checkpoint=checkpoint.note or "")


@router.get("/consistency", response_model=ConsistencyProofOut,
            responses=problems(NotFound, Conflict, ServiceUnavailable, AuditLogDamaged))
def consistency_proof(
    session: SessionDep, caller: AuditReader, runtime: RuntimeDep,
    from_size: int = Query(ge=1, le=MAX_SEQ, description="the size of the checkpoint you kept"),
    to_size: int | None = Query(default=None, ge=1, le=MAX_SEQ,
                                description="a signed tree size (default: the latest)"),
) -> ConsistencyProofOut:
    """Proof that the signed tree of `to_size` entries extends the one of `from_size`."""
    if to_size is not None and from_size > to_size:
        raise Invalid(f"from_size ({from_size}) is larger than to_size ({to_size}): a log "
                      "only grows", field="from_size")
    checkpoint = _signed_tree(session, runtime, to_size, covering=from_size, field="to_size",
                              covering_field="from_size")
    if from_size > checkpoint.size:
        raise Invalid(f"the log has {checkpoint.size} entries in its signed tree",
                      field="from_size")
    with tree_read():
        proof = tree.consistency_proof(session, first=from_size, second=checkpoint.size)
    return ConsistencyProofOut(from_size=from_size, to_size=checkpoint.size,
                               proof=[p.hex() for p in proof], checkpoint=checkpoint.note or "")
