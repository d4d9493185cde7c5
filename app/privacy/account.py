"""The verified person's pages: their requests, consents and opt-out, branding and language."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from app.config import Settings
from app.deps import KeyringDep, PolicyDep, SessionDep, SettingsDep
from app.dsr import service as dsr_service
from app.errors import Invalid
from app.policy.loader import Policy
from app.privacy import rights, web
from app.privacy.router import (
    STATIC,
    MaybePerson,
    PersonFormDep,
    csrf_ok,
    page,
    redirect,
    refused,
)

router = APIRouter(prefix=web.PATH, include_in_schema=False)
DsrId = Annotated[str, PathParam(min_length=1, max_length=40)]


def _not_found(request: Request, settings: Settings) -> Response:
    return web.render(request, settings, "message.html", status=404, title="not_found_title",
                      message="not_found")


def _jurisdictions(policy: Policy, lang: str) -> list[dict[str, Any]]:
    return [{"code": code, "description": getattr(spec.description, lang),
             "deadline": spec.request_deadline}
            for code, spec in sorted(policy.body.jurisdictions.items())]


@router.get("/home")
def home(request: Request, session: SessionDep, keyring: KeyringDep, policy: PolicyDep,
         settings: SettingsDep, who: MaybePerson) -> Response:
    if who is None:
        return redirect(web.PATH)
    lang = web.language(request, settings)
    gpc = request.headers.get("sec-gpc") == "1"
    # a Global Privacy Control signal is an opt-out of sale and sharing (11 CCR 7025)
    gpc_recorded = gpc and rights.opt_out(session, policy, caller=who.caller,
                                          subject_id=who.subject_id, gpc=True)
    rights.read_audited(session, caller=who.caller, subject_id=who.subject_id, page="home")
    return page(request, session, keyring, settings, "home.html",
                 requests=rights.requests(session, subject_id=who.subject_id),
                 consents=rights.consents(session, policy, subject_id=who.subject_id,
                                          lang=lang),
                 opted_out=rights.opted_out(session, policy, subject_id=who.subject_id),
                 gpc=gpc, gpc_recorded=gpc_recorded, types=rights.TYPES,
                 jurisdictions=_jurisdictions(policy, lang),
                 fields=rights.correctable(policy), error=None)


@router.post("/requests")
def file_request(request: Request, session: SessionDep, keyring: KeyringDep,
                 policy: PolicyDep, settings: SettingsDep, who: MaybePerson,
                 fields: PersonFormDep) -> Response:
    if who is None:
        return redirect(web.PATH)
    if not csrf_ok(request, session, keyring, fields):
        return refused(request, settings)
    kind, jurisdiction = fields.get("type", ""), fields.get("jurisdiction", "")
    corrections = None
    if kind == "rectification" and fields.get("field"):
        corrections = {fields["field"]: fields.get("value", "")}
    try:
        if kind not in rights.TYPES:
            raise Invalid("unknown request type", field="type")
        dsr = rights.file_request(session, policy, keyring, caller=who.caller,
                                  subject_id=who.subject_id, type=kind,
                                  jurisdiction=jurisdiction,
                                  language=web.language(request, settings),
                                  corrections=corrections)
    except Invalid as exc:  # refused before anything was written
        return web.render(request, settings, "message.html", status=422,
                          title="request_refused_title", message="request_refused",
                          detail=exc.detail)
    return redirect(f"{web.PATH}/requests/{dsr.id}")


@router.get("/requests/{dsr_id}")
def show_request(dsr_id: DsrId, request: Request, session: SessionDep, keyring: KeyringDep,
                 settings: SettingsDep, who: MaybePerson) -> Response:
    if who is None:
        return redirect(web.PATH)
    dsr = rights.one_request(session, subject_id=who.subject_id, dsr_id=dsr_id)
    if dsr is None:
        rights.denied(session, caller=who.caller, subject_id=who.subject_id, dsr_id=dsr_id,
                      operation="read")
        return _not_found(request, settings)
    rights.read_audited(session, caller=who.caller, subject_id=who.subject_id,
                        page="request")
    return page(request, session, keyring, settings, "request.html",
                 dsr=dsr_service.dsr_dict(dsr), exportable=dsr.type in rights.EXPORTS)


@router.get("/requests/{dsr_id}/export")
def download(dsr_id: DsrId, request: Request, session: SessionDep, keyring: KeyringDep,
             settings: SettingsDep, who: MaybePerson,
             format: Annotated[str, Query(pattern="^(json|html)$")] = "html") -> Response:
    if who is None:
        return redirect(web.PATH)
    dsr = rights.one_request(session, subject_id=who.subject_id, dsr_id=dsr_id)
    body = None if dsr is None else rights.download(session, keyring, caller=who.caller,
                                                    dsr=dsr, fmt=format)
    if dsr is None:
        rights.denied(session, caller=who.caller, subject_id=who.subject_id, dsr_id=dsr_id,
                      operation="export")
    if dsr is None or body is None:
        return _not_found(request, settings)
    media = "application/json" if format == "json" else "text/html; charset=utf-8"
    return Response(body, media_type=media, headers={
        "Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; "
        "style-src 'unsafe-inline'; frame-ancestors 'none'",
        "Content-Disposition": f'attachment; filename="{dsr.id}.{format}"'})


@router.post("/consents/{purpose}/withdraw")
def withdraw(purpose: Annotated[str, PathParam(min_length=1, max_length=64)],
             request: Request, session: SessionDep, keyring: KeyringDep, policy: PolicyDep,
             settings: SettingsDep, who: MaybePerson, fields: PersonFormDep) -> Response:
    if who is None:
        return redirect(web.PATH)
    if not csrf_ok(request, session, keyring, fields):
        return refused(request, settings)
    if purpose not in policy.body.purposes:
        return _not_found(request, settings)
    rights.withdraw(session, policy, caller=who.caller, subject_id=who.subject_id,
                    purpose=purpose)
    return redirect(f"{web.PATH}/home#consents")


@router.post("/opt-out")
def opt_out(request: Request, session: SessionDep, keyring: KeyringDep, policy: PolicyDep,
            settings: SettingsDep, who: MaybePerson, fields: PersonFormDep) -> Response:
    if who is None:
        return redirect(web.PATH)
    if not csrf_ok(request, session, keyring, fields):
        return refused(request, settings)
    rights.opt_out(session, policy, caller=who.caller, subject_id=who.subject_id,
                   gpc=request.headers.get("sec-gpc") == "1")
    return redirect(f"{web.PATH}/home#consents")


# -- language and branding -----------------------------------------------------------------

@router.get("/language/{lang}")
def switch_language(lang: str, request: Request, settings: SettingsDep,
                    next: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    response = redirect(web.safe_next(next))
    if lang in settings.privacy_languages:
        web.cookie(response, settings, web.LANGUAGE_COOKIE, lang, max_age=365 * 86400,
                   strict=False)
    return response


@router.get("/brand.css")
def brand_css(settings: SettingsDep) -> Response:
    return Response(web.brand_css(settings), media_type="text/css",
                    headers={"Cache-Control": "no-cache"})


@router.get("/brand/logo")
def brand_logo(settings: SettingsDep) -> Response:
    if settings.privacy_logo_file is None or not settings.privacy_logo_file.is_file():
        return Response(status_code=404)
    return FileResponse(settings.privacy_logo_file, headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(web.HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "no-cache"})
