"""The web pages as a kiosk output: uvicorn in its own thread on a socket bound here (so a
port in use is one clear log line and the kiosk screens on without its pages), the live
picture's encoder in another, and the loop's events and status handed over by edge/web/live.py."""

from __future__ import annotations

import logging
import socket
import ssl
import threading

import uvicorn

from edge.config import is_loopback
from edge.events import Event, KioskStatus
from edge.port import KioskPort
from edge.web.app import WebContext, create_app
from edge.web.auth import Staff, load_password_hash
from edge.web.i18n import load_texts
from edge.web.photo import PhotoCheck
from edge.web.preview import Preview

log = logging.getLogger(__name__)
STOP_WAIT_S = 5.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(64)
    sock.setblocking(False)
    return sock


def web_context(port: KioskPort, metrics=None) -> WebContext:
    """What the pages serve from: the kiosk's port, its texts, the staff login, the live picture, the photo check."""
    w = port.cfg.web
    return WebContext(cfg=port.cfg, kiosk=port, texts=load_texts(w.languages, w.site_dir),
                      staff=Staff(load_password_hash(w), w.session_hours * 3600, w.login_attempts),
                      preview=Preview(port, w.preview_fps), metrics=metrics, photos=PhotoCheck(port))


class WebOutput:
    """Serves the pages while the kiosk runs. `url` is None when it could not start."""

    offers_consent = True  # the kiosk screen has the "I agree" button: the kiosk applies its consent rule

    def __init__(self, port: KioskPort, metrics=None) -> None:
        w = port.cfg.web
        self.ctx = web_context(port, metrics)
        self.ctx.live.on_status(port.status)
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        try:
            sock = bind(w.host, w.port)
        except OSError as e:
            log.error("web pages NOT served: cannot listen on %s:%d (%s); the kiosk screens on without them "
                      "(set web.port, or web.enabled: false)", w.host, w.port, e.strerror or e)
            return
        tls = {"ssl_certfile": str(w.tls_cert), "ssl_keyfile": str(w.tls_key)} if w.tls_cert is not None else {}
        config = uvicorn.Config(create_app(self.ctx), log_level="warning", access_log=False, timeout_graceful_shutdown=1,
                                lifespan="on", proxy_headers=False, server_header=False, **tls)
        try:
            config.load()  # here, not in the server's thread: a key it cannot read is one line, not a traceback
        except (OSError, ssl.SSLError) as e:
            sock.close()
            log.error("web pages NOT served: cannot use web.tls_cert %s with web.tls_key %s (%s); the kiosk screens on "
                      "without them", w.tls_cert, w.tls_key, getattr(e, "strerror", None) or e)
            return
        port = sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{w.host if ':' not in w.host else f'[{w.host}]'}:{port}"
        if not is_loopback(w.host):  # the config refuses this without TLS or plain_http_on_network: a line either way
            if tls:
                log.warning("web pages serve the network on %s over HTTPS (web.tls_cert %s): anyone who reaches it sees "
                            "the kiosk screen and the staff login", self.url, w.tls_cert)
            else:
                log.warning("web pages serve the network on %s WITHOUT TLS (web.plain_http_on_network): the staff password, "
                            "sessions and CSV export cross the network in clear", self.url)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="web-server", daemon=True)
        self._thread.start()
        self.ctx.preview.start()
        log.info("web pages on %s (kiosk screen /, staff /staff, photo check /check)", self.url)

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        except Exception:  # the pages failing must not take the screening down
            log.exception("the web server stopped; the kiosk screens on")
        finally:
            sock.close()

    def on_event(self, event: Event) -> None:
        self.ctx.live.on_event(event)

    def on_status(self, status: KioskStatus) -> None:
        self.ctx.live.on_status(status)

    def close(self) -> None:
        self.ctx.preview.stop()
        self.ctx.live.close_from_any_thread()  # open event streams end, so the server need not wait for them
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(STOP_WAIT_S)
            if self._thread.is_alive():
                log.error("the web server did not stop within %g s", STOP_WAIT_S)
