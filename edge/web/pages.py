"""The HTML pages: the kiosk screen, staff login and dashboard, the photo check. Each is a
static template (string.Template, values escaped) whose texts and data come from its script
under /static; every page carries the CSRF token its forms and requests send back."""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from string import Template

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from edge.web.api import client_of, ctx_of, is_staff
from edge.web.auth import CSRF_COOKIE, SESSION_COOKIE, csrf_ok, new_csrf_token

TEMPLATES = Path(__file__).resolve().parent / "templates"
FAVICON = TEMPLATES.parent / "static" / "favicon.ico"
router = APIRouter()
NEXT_PAGES = ("/staff", "/check")  # where a login may lead: never a URL from outside


@lru_cache(maxsize=None)
def template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(request: Request, name: str, status_code: int = 200, **values) -> HTMLResponse:
    """The page with its values escaped, and the CSRF cookie its token matches."""
    ctx = ctx_of(request)
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    w = ctx.cfg.web
    page = template(name).substitute(
        csrf=html.escape(token), lang=html.escape(w.languages[0]), languages=html.escape(",".join(w.languages)),
        kiosk_id=html.escape(ctx.cfg.kiosk_id), **{k: html.escape(str(v)) for k, v in values.items()})
    response = HTMLResponse(page, status_code=status_code)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def kiosk_page(request: Request) -> HTMLResponse:
    ctx = ctx_of(request)
    store, lapse = ctx.cfg.store, ctx.live.status.consent_lapse_s  # the kiosk's consent rule, as its status publishes it
    return render(request, "kiosk.html", consent=str(lapse is not None).lower(), result_s=ctx.cfg.web.result_s,
                  idle_reset_s=lapse if lapse is not None else ctx.cfg.decision.consent_lapse_s,
                  keep_days=f"{store.frame_days:g}" if store.keep_best_frame else "")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """Where browsers look for a page's icon without being told."""
    return FileResponse(FAVICON, media_type="image/x-icon", headers={"cache-control": "max-age=86400"})


def login_page(request: Request, status_code: int = 200, error: str = "", wait_s: int = 0, next_page: str = "/staff"):
    if not ctx_of(request).staff.configured:
        return render(request, "setup.html", status_code=503 if request.method == "POST" else 200)
    response = render(request, "login.html", status_code, error=error, wait_s=wait_s, next=next_page)
    if wait_s:
        response.headers["retry-after"] = str(wait_s)
    return response


@router.get("/staff/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = "/staff") -> HTMLResponse:
    return login_page(request, next_page=next if next in NEXT_PAGES else "/staff")


LOGIN_RESPONSES = {303: {"description": "signed in: on to the dashboard"}, 401: {"description": "wrong password",
                   "content": {"text/html": {}}}, 403: {"description": "missing or wrong CSRF token", "content": {"text/html": {}}},
                   429: {"description": "too many attempts, or too many password checks at once: wait", "content": {"text/html": {}}},
                   503: {"description": "no staff password is set", "content": {"text/html": {}}}}


@router.post("/staff/login", response_class=HTMLResponse, responses=LOGIN_RESPONSES, tags=["staff"])
async def login(request: Request, password: str = Form("", max_length=1024), csrf: str = Form("", max_length=256),
                next: str = Form("/staff", max_length=64)):
    """Sign in with the staff password (the login page's form); failed attempts are limited per client."""
    ctx = ctx_of(request)
    next_page = next if next in NEXT_PAGES else "/staff"
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
        return login_page(request, 403, "csrf", next_page=next_page)
    client = client_of(request)
    if (wait := ctx.staff.wait_s(client)) > 0:  # refused here without a thread; login() counts and checks again
        return login_page(request, 429, "too_many", int(wait) + 1, next_page)
    result = await run_in_threadpool(ctx.staff.login, client, password)  # argon2 takes a while: off the event loop
    if result.busy:
        return login_page(request, 429, "busy", 1, next_page)
    if result.wait_s > 0:
        return login_page(request, 429, "too_many", int(result.wait_s) + 1, next_page)
    if result.token is None:
        return login_page(request, 401, "wrong", next_page=next_page)  # the next attempt may have to wait
    response = RedirectResponse(next_page, status_code=303)
    response.set_cookie(SESSION_COOKIE, result.token, max_age=int(ctx.cfg.web.session_hours * 3600), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/staff/logout", include_in_schema=False)
async def logout(request: Request, csrf: str = Form(max_length=256)):
    if csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
        ctx_of(request).staff.logout(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/staff/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/staff", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request):
    if not ctx_of(request).staff.configured:
        return render(request, "setup.html")
    if not is_staff(request):
        return RedirectResponse("/staff/login", status_code=303)
    return render(request, "staff.html")


@router.get("/check", response_class=HTMLResponse, include_in_schema=False)
def check_page(request: Request):
    ctx = ctx_of(request)
    if ctx.cfg.web.check_needs_login:
        if not ctx.staff.configured:
            return render(request, "setup.html")
        if not is_staff(request):
            return RedirectResponse("/staff/login?next=/check", status_code=303)
    return render(request, "check.html", max_mb=f"{ctx.cfg.web.max_upload_mb:g}")
