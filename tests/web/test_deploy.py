"""The unit that shows the kiosk's screen on a Raspberry Pi: valid for systemd, and pointed
at the page the kiosk serves by default."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.config import WebConfig

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "mpox-kiosk-browser.service"


def test_the_browser_opens_the_kiosks_default_address_in_kiosk_mode():
    text = UNIT.read_text()
    w = WebConfig()
    assert f"Environment=KIOSK_URL=http://{w.host}:{w.port}/" in text
    start = re.search(r"^ExecStart=(.*?)(?<!\\)$", text, re.M | re.S).group(1)
    assert "--kiosk" in start and "${KIOSK_URL}" in start
    assert re.search(r"^ExecStartPre=.*--retry-connrefused.*\$\{KIOSK_URL\}api/status", text, re.M)  # waits for the page


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit():
    result = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "mpox-kiosk-browser" not in result.stderr, result.stderr  # no warning about this unit
