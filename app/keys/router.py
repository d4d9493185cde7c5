from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from app.audit import service as audit
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.clock import iso_or_none
from app.deps import KeyringDep, SessionDep
from app.errors import Conflict, Invalid, NotFound, problems
from app.keys import rotation, shred
from app.keys.schemas import (
    CancelledOut,
    DestroyedOut,
    KeyStatusOut,
    RotationStartedOut,
)
from app.keys.shred import LegalHoldActive
from app.keys.status import key_status
from app.schemas import StrictModel

router = APIRouter(prefix="/v1/keys", tags=["keys"])
KeyAdmin = Annotated[Caller, Depends(RequireScope(Scope.KEYS_ADMIN))]


class RotateRequest(StrictModel):
    kind: Literal["kek", "dek"]
    subject_id: str | None = Field(default=None, min_length=1, max_length=255)
    all: bool = Field(default=False, description="DEK: new data keys for every subject")


class DestroyRequest(StrictModel):
    grace_seconds: int = Field(default=0, ge=0, le=90 * 86400)


@router.get("/status", response_model=KeyStatusOut)
def status(session: SessionDep, caller: KeyAdmin, keyring: KeyringDep) -> KeyStatusOut:
    """Versions, counts and rotation progress; never key material."""
    audit.record(session, caller=caller, action="keys.status_read")
    return KeyStatusOut.model_validate(key_status(session, keyring))


@router.post("/rotate", status_code=202, response_model=RotationStartedOut,
             response_model_exclude_unset=True,
             responses=problems(Conflict))
def rotate(body: RotateRequest, session: SessionDep, caller: KeyAdmin, keyring: KeyringDep,
           response: Response) -> RotationStartedOut:
    """KEK: make a new version and rewrap every DEK in a job (`job_id`; resumable, also with
    `pgw keys rotate-kek`). DEK: give one subject a new data key now, or with `all` every
    subject in a job."""
    if body.kind == "dek" and not body.all:
        if body.subject_id is None:
            raise Invalid("a DEK rotation names a subject, or all of them with \"all\": true",
                          field="subject_id")
        version = rotation.rotate_subject_dek(session, keyring, caller=caller,
                                              subject_id=body.subject_id)
        response.status_code = 200
        return RotationStartedOut(kind="dek", subject_id=body.subject_id, version=version)
    if body.kind == "dek":
        started = rotation.start_dek_rotation(session)
    else:
        started = rotation.start_kek_rotation(session, keyring, caller=caller)
    # the job is queued in this request's transaction: it runs once the rotation is committed
    job_id = rotation.enqueue_rotation(session, started, caller=caller)
    return RotationStartedOut.model_validate({
        "kind": body.kind, "rotation_id": started.id, "target_version": started.target_version,
        "status": "running", "job_id": job_id})


@router.post("/subjects/{subject_id}/destroy", response_model=DestroyedOut,
             responses=problems(NotFound, LegalHoldActive))
def destroy(subject_id: str, body: DestroyRequest, session: SessionDep, caller: KeyAdmin,
            keyring: KeyringDep) -> DestroyedOut:
    """Crypto-shred a subject now, or after a grace period that can be cancelled."""
    grace = timedelta(seconds=body.grace_seconds) if body.grace_seconds else None
    when = shred.destroy_subject_keys(session, keyring, caller=caller, subject_id=subject_id,
                                      grace=grace)
    return DestroyedOut.model_validate({"subject_id": subject_id, "destroyed": when is None,
            "destroy_after": iso_or_none(when)})


@router.post("/subjects/{subject_id}/cancel-destruction", response_model=CancelledOut,
             responses=problems(NotFound))
def cancel(subject_id: str, session: SessionDep, caller: KeyAdmin) -> CancelledOut:
    count = shred.cancel_destruction(session, caller=caller, subject_id=subject_id)
    return CancelledOut.model_validate({"subject_id": subject_id, "cancelled_keys": count})
