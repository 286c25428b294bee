"""The JSON API, the kiosk screen's event stream and live picture, and the service endpoints.
Its OpenAPI schema (/openapi.json) is what tests/web/test_api_fuzz.py fuzzes."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from edge import MAX_IMAGE_PIXELS
from edge.decision import Origin, Outcome, State
from edge.errors import ImageError, KioskError
from edge.events import model_fields, status_fields
from edge.images import read_image
from edge.quality import Verdict
from edge.screening_code import screening_code
from edge.state import StateDir
from edge.web import records
from edge.web.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, csrf_ok
from edge.web.live import screen_view, sse, state_is_live
from edge.web.photo import data_url
from edge.web.uploads import STATUS, UploadRefused, check_upload, too_big

router = APIRouter()
KEEPALIVE_S = 15.0
CONSENT_WAIT_S = 3.0  # the loop takes a consent within a frame or 0.1 s; this long means it is not running
LOCAL = {"127.0.0.1", "::1", "localhost"}
Language = Literal["en", "fr", "pt", "es", "sw"]


class Problem(BaseModel):
    detail: str
    code: str | None = None  # for the page: a key of error.* in the translations


class ScreenView(BaseModel):
    state: State
    verdict: Verdict
    progress: list[int]
    camera_ok: bool


class Health(BaseModel):
    ok: bool
    reason: str
    warnings: list[str]  # standing problems that do not stop screening (another kiosk uses this id)


class ScreeningRow(BaseModel):
    id: str
    code: str  # the short code on the result card (edge/screening_code.py)
    finished_utc: str
    outcome: Outcome
    label: str
    confidence: float
    model: str
    origin: Origin
    has_frame: bool


class DayCounts(BaseModel):
    day: str
    counts: dict[str, int]


class ModelOut(BaseModel):
    name: str
    version: str
    precision: str
    device: str
    sha256: str
    mpox_threshold: float


class DeviceHealth(BaseModel):
    camera_ok: bool
    camera_problem: str
    state: State
    fps: float
    frames: int
    dropped: int
    outages: int
    screenings: int
    inference_ms: float
    model: ModelOut
    uptime_s: float
    disk_free_mb: float | None
    cpu_temperature_c: float | None
    stuck: str  # the last stuck episode while recent ("" when none): see /healthz
    recoveries: int
    warnings: list[str]  # as /healthz's


class CheckResult(BaseModel):
    id: str
    code: str
    outcome: Outcome
    label: str
    probabilities: dict[str, float]
    heatmap: str | None  # the heatmap over the photo as a data: URL (JPEG); None when the model has none


def ctx_of(request: Request):
    return request.app.state.ctx


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def is_staff(request: Request) -> bool:
    return ctx_of(request).staff.valid(request.cookies.get(SESSION_COOKIE))


def require_staff(request: Request) -> None:
    staff = ctx_of(request).staff
    if not staff.configured:
        raise HTTPException(401, "staff login is not set up: see /staff")
    if not is_staff(request):
        raise HTTPException(401, "sign in at /staff/login")


def require_csrf(request: Request, sent: str | None) -> None:
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), sent):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")


UNAUTHORIZED = {401: {"model": Problem, "description": "not signed in"}}


# --- the kiosk screen -------------------------------------------------------------------
@router.get("/api/status", response_model=ScreenView, tags=["kiosk"])
def status(request: Request) -> dict:
    """What the kiosk screen shows now: state, the gate's verdict, progress, camera."""
    return screen_view(ctx_of(request).live.status)


@router.post("/api/consent", response_model=ScreenView, tags=["kiosk"],
             responses={403: {"model": Problem, "description": "not from the kiosk itself, or no CSRF token"},
                        503: {"model": Problem, "description": "the kiosk loop did not take it"}})
async def consent(request: Request) -> dict:
    """The person tapped "I agree" on the kiosk screen: the kiosk may screen them, once. From this machine only unless web.preview_remote; needs the page's X-CSRF-Token.
    Answers once the kiosk loop has taken it."""
    ctx = ctx_of(request)
    if not ctx.cfg.web.preview_remote and client_of(request) not in LOCAL:
        raise HTTPException(403, "consent is given on the kiosk itself only (web.preview_remote)")
    require_csrf(request, request.headers.get(CSRF_HEADER))
    ctx.kiosk.agree()
    deadline = time.monotonic() + CONSENT_WAIT_S
    while ctx.live.status.state == State.AWAITING_CONSENT:
        if time.monotonic() > deadline:
            raise HTTPException(503, "the kiosk did not take the consent: is it running?")
        await asyncio.sleep(0.02)
    return screen_view(ctx.live.status)


@router.get("/api/languages", response_model=dict[str, str], tags=["kiosk"])
def languages(request: Request) -> dict:
    """The languages offered, first the default, each by its own name."""
    ctx = ctx_of(request)
    return {lang: ctx.texts[lang]["language"] for lang in ctx.cfg.web.languages}


@router.get("/api/texts/{lang}", response_model=dict[str, str], responses={404: {"model": Problem}}, tags=["kiosk"])
def texts(request: Request, lang: Language) -> dict:
    """Every text of the pages in one language, with the site's own wording."""
    found = ctx_of(request).texts.get(lang)
    if found is None:
        raise HTTPException(404, f"language {lang} is not offered here")
    return found


@router.get("/api/events", include_in_schema=False)
async def events(request: Request) -> StreamingResponse:
    """Server-sent events: `status` when what the screen shows changes, `result` when a
    screening by the kiosk's camera finishes (results, like the live picture, only to this
    machine unless web.preview_remote: the person in front of the kiosk is not watched from afar)."""
    ctx = ctx_of(request)
    live = ctx.live
    results = ctx.cfg.web.preview_remote or client_of(request) in LOCAL

    async def stream():
        q = live.subscribe()
        try:
            while True:
                try:
                    message = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                if message[0] == "result" and not results:
                    continue
                yield sse(*message)
        finally:
            live.unsubscribe(q)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})


@router.get("/preview.mjpg", include_in_schema=False)
async def preview(request: Request) -> StreamingResponse:
    """The live picture (MJPEG), to this machine only unless web.preview_remote."""
    ctx = ctx_of(request)
    if not ctx.cfg.web.preview_remote and client_of(request) not in LOCAL:
        raise HTTPException(403, "the live picture is shown on the kiosk itself only (web.preview_remote)")
    p = ctx.preview

    async def stream():
        p.watch(1)
        try:
            shown = -1
            while not ctx.live.closing:
                n, jpeg = p.latest
                if n != shown and jpeg:
                    shown = n
                    yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
                await asyncio.sleep(p.period / 2)
        finally:
            p.watch(-1)

    return StreamingResponse(stream(), media_type="multipart/x-mixed-replace; boundary=frame")


# --- service endpoints --------------------------------------------------------------------
@router.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "camera or loop down"}},
            tags=["service"])
def healthz(request: Request):
    """200 while the kiosk loop runs with its model and sees its camera; 503 and the reason
    otherwise; either way the standing problems that do not stop screening."""
    live = ctx_of(request).live
    ok, reason = state_is_live(live.status, time.monotonic(), live.beat)
    return JSONResponse({"ok": ok, "reason": reason, "warnings": list(live.status.warnings)}, status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    m = ctx_of(request).metrics
    if m is None:
        raise HTTPException(404, "metrics are off")
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


# --- staff ----------------------------------------------------------------------------------
@router.get("/api/staff/screenings", response_model=list[ScreeningRow], responses=UNAUTHORIZED, tags=["staff"])
def staff_screenings(request: Request, day_from: date | None = None, day_to: date | None = None,
                     outcome: Outcome | None = None, origin: Origin | None = None,
                     limit: int = Query(100, ge=1, le=1000), code: str | None = Query(None, max_length=16)) -> list[dict]:
    """The newest screenings first (UTC days, both ends included); `code`: the one a visitor reads out."""
    require_staff(request)
    return records.screenings(ctx_of(request).db_path, day_from, day_to, outcome, origin, limit, code)


@router.get("/api/staff/daily", response_model=list[DayCounts], responses=UNAUTHORIZED, tags=["staff"])
def staff_daily(request: Request, day_from: date | None = None, day_to: date | None = None,
                origin: Origin | None = None) -> list[dict]:
    """Screenings per UTC day by outcome."""
    require_staff(request)
    return records.per_day(ctx_of(request).db_path, day_from, day_to, origin)


def cpu_temperature() -> float | None:
    """The SoC/CPU temperature where the platform exposes it (Raspberry Pi, most Linux PCs)."""
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000
    except (OSError, ValueError):
        return None


@router.get("/api/staff/health", response_model=DeviceHealth, responses=UNAUTHORIZED, tags=["staff"])
def staff_health(request: Request) -> dict:
    """Camera, loop and model figures, uptime, free disk and CPU temperature."""
    require_staff(request)
    ctx = ctx_of(request)
    try:
        free = shutil.disk_usage(ctx.cfg.state_dir).free / 1e6
    except OSError:
        free = None
    return {**status_fields(ctx.live.status), "model": model_fields(ctx.kiosk.model), "disk_free_mb": free,
            "cpu_temperature_c": cpu_temperature()}


@router.get("/api/staff/frames/{screening_id}", responses={**UNAUTHORIZED, 404: {"model": Problem},
                                                             200: {"content": {"image/jpeg": {}}}},
            response_class=Response, tags=["staff"])
def staff_frame(request: Request, screening_id: str, explain: bool = False) -> Response:
    """A screening's kept frame (store.keep_best_frame), with the heatmap over it if `explain`
    and the model gives one."""
    require_staff(request)
    ctx = ctx_of(request)
    name = records.frame_path(ctx.db_path, screening_id)
    path = StateDir(ctx.cfg.state_dir).frames / name if name else None
    if path is None or not path.is_file():
        raise HTTPException(404, "no picture kept for this screening")
    if explain:
        try:
            jpeg = ctx.photos.explain_frame_jpeg(read_image(path))
        except ImageError as e:
            raise HTTPException(404, str(e)) from None
        if jpeg is None:
            raise HTTPException(404, "this model gives no heatmap")
        return Response(jpeg, media_type="image/jpeg")
    return Response(path.read_bytes(), media_type="image/jpeg")


@router.get("/staff/audit.csv", responses={**UNAUTHORIZED, 200: {"content": {"text/csv": {}}}}, response_class=Response,
            tags=["staff"])
def staff_csv(request: Request, day_from: date | None = None, day_to: date | None = None, outcome: Outcome | None = None,
              origin: Origin | None = None, code: str | None = Query(None, max_length=16)) -> StreamingResponse:
    """The audit log's screenings as CSV, every column and each one's code, oldest first."""
    require_staff(request)
    rows = records.csv_rows(ctx_of(request).db_path, day_from, day_to, outcome, origin, code)
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": 'attachment; filename="audit.csv"'})


# --- the photo check --------------------------------------------------------------------------
CHECK_BODY = {"requestBody": {"required": True, "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                            for t in ("image/jpeg", "image/png", "image/webp", "image/bmp")}}}


@router.post("/api/check", response_model=CheckResult, openapi_extra=CHECK_BODY, tags=["check"],
             responses={**UNAUTHORIZED, 403: {"model": Problem}, 413: {"model": Problem}, 415: {"model": Problem},
                        422: {"model": Problem, "description": "a picture too small to judge"}, 503: {"model": Problem}})
async def check_photo(request: Request):
    """One photo (the request body) -> the result by the kiosk's rules, its heatmap, and an
    audit row marked as an upload. Needs the X-CSRF-Token header of the page."""
    ctx = ctx_of(request)
    if ctx.cfg.web.check_needs_login:
        require_staff(request)
    require_csrf(request, request.headers.get(CSRF_HEADER))
    limit = int(ctx.cfg.web.max_upload_mb * 1e6)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return problem(too_big(limit))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # stop reading: a 50 MB file never sits in memory whole
            return problem(too_big(limit))
    try:
        image = await run_in_threadpool(check_upload, bytes(body), limit, MAX_IMAGE_PIXELS)
        checked = await run_in_threadpool(ctx.photos.check, image)
    except UploadRefused as e:
        return problem(e)
    except KioskError as e:  # the model cannot be compiled for explaining: one line, the page says try again
        return JSONResponse({"detail": str(e), "code": "other"}, status_code=503)
    s = checked.screening
    return {"id": s.id, "code": screening_code(s.id), "outcome": s.outcome, "label": s.label, "probabilities": s.probabilities,
            "heatmap": data_url(checked.overlay_jpeg)}


def problem(e: UploadRefused) -> JSONResponse:
    return JSONResponse({"detail": e.detail, "code": e.reason.value}, status_code=STATUS[e.reason])
