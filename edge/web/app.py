"""The web app's factory: routes, static files, and the security headers on every response."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from edge import __version__
from edge.config import KioskConfig
from edge.port import KioskPort
from edge.state import StateDir
from edge.web.auth import Staff
from edge.web.live import Live
from edge.web.photo import PhotoCheck
from edge.web.preview import Preview

HERE = Path(__file__).resolve().parent
# No inline script or style anywhere: every script is a file under /static.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"), (b"permissions-policy", b"camera=(self), microphone=()")]


@dataclass
class WebContext:
    """Everything a request may use. The kiosk only through its port (edge/port.py): its
    frozen status, latest frame, model facts and three commands; never its engine or store."""

    cfg: KioskConfig
    kiosk: KioskPort
    texts: dict[str, dict[str, str]]
    staff: Staff
    live: Live = field(default_factory=Live)
    preview: Preview | None = None
    metrics: object | None = None  # edge.outputs.metrics.MetricsOutput
    photos: PhotoCheck | None = None
    started: float = field(default_factory=time.time)

    @property
    def db_path(self) -> Path:
        return StateDir(self.cfg.state_dir).audit_db


class SecurityHeaders:
    """A plain ASGI middleware (it never buffers, so the event stream and the live picture flow)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in dict(SECURITY_HEADERS)]
                if not any(h[0].lower() == b"cache-control" for h in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(ctx: WebContext) -> FastAPI:
    from edge.web import api, pages

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        ctx.live.attach(asyncio.get_running_loop())
        try:
            yield
        finally:
            ctx.live.close()

    app = FastAPI(title="mpox kiosk", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="The kiosk's screen, staff dashboard, photo check and service endpoints.")
    app.state.ctx = ctx
    app.include_router(pages.router)
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(SecurityHeaders)
    return app
