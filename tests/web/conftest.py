"""A real kiosk (`mpox kiosk run` on the demo source) serving its pages on a free port, and
Debian's Chromium driven by Playwright (never a browser download)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge.web.auth import hash_password
from tests import last_wins

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "staff password 1"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningKiosk:
    url: str
    state: Path
    log: list[str]


def kiosk_yaml(port: int, extra: str = "") -> str:
    # The demo's visits at 30 fps, short screenings and a short hold: a result every few seconds.
    return last_wins(f"kiosk_id: web-test\nstate_dir: state\nsource:\n  kind: demo\n  fps: 30\n"
            f"decision:\n  frames: 5\n  best_frames: 4\n  result_hold_s: 1.0\n  leave_after_s: 0.3\n"
            f"presence:\n  learn_s: 0.2\nstore:\n  keep_best_frame: true\n"
            f"web:\n  port: {port}\n  staff_password_hash: '{hash_password(PASSWORD)}'\n  login_attempts: 3\n"
            f"  result_s: 30\n{extra}")


@pytest.fixture(scope="session")
def kiosk(tmp_path_factory) -> RunningKiosk:
    work = tmp_path_factory.mktemp("kiosk")
    port = free_port()
    (work / "kiosk.yaml").write_text(kiosk_yaml(port))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "kiosk", "run", "--no-view", "--config", "kiosk.yaml"],
                            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, "".join(lines)
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the kiosk's pages did not come up:\n" + "".join(lines))
    yield RunningKiosk(url, work / "state", lines)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0, "".join(lines)
    finally:
        proc.kill()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # Waits, not speed checks: a page on a loaded 2-core CI machine may take seconds to update.
    expect.set_options(timeout=20_000)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
