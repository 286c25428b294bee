"""deploy/mpox-kiosk.service: systemd accepts it, its hardening scores an exposure of at most
3.0, and it still lets the kiosk do its job (camera devices, network, JIT-compiled inference)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "mpox-kiosk.service"
INSTALLED_MPOX = "/opt/mpox-kiosk/venv/bin/mpox"  # where deploy/install.sh puts the program


def settings(path: Path = UNIT) -> dict[str, list[str]]:
    """Each key of the unit with its values in order (keys such as DeviceAllow= repeat)."""
    found: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found[key].append(value)
    return found


def test_systemd_verifies_the_unit(tmp_path):
    # verify also checks that ExecStart's program exists: on this machine that is the venv's own
    # `mpox` (the same console script install.sh puts in /opt), so the copy points there.
    mpox = Path(sys.executable).with_name("mpox")
    assert mpox.is_file(), f"run the tests from the project's venv ({mpox} missing)"
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(INSTALLED_MPOX, str(mpox)))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # the unit as shipped: its only complaint here is the program not installed yet
    result = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
    assert result.stderr.strip().splitlines() == [f"{UNIT.name}: Command {INSTALLED_MPOX} is not executable: No such file or directory"]


def test_exposure_is_at_most_3():
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    score = re.search(r"Overall exposure level for mpox-kiosk\.service: (\d+\.\d+)", result.stdout)
    assert score, result.stdout[-500:]
    assert float(score[1]) <= 3.0, result.stdout


def test_the_unit_runs_the_installed_kiosk_with_its_config_and_state():
    unit = settings()
    assert unit["ExecStart"] == [f"{INSTALLED_MPOX} kiosk run --config /etc/mpox-kiosk/kiosk.yaml --no-view"]
    assert unit["ConfigurationDirectory"] == ["mpox-kiosk"] and unit["StateDirectory"] == ["mpox-kiosk"]
    assert (unit["Type"], unit["NotifyAccess"], unit["Restart"]) == (["notify"], ["main"], ["on-failure"])
    assert unit["WatchdogSec"] and unit["StartLimitIntervalSec"] and unit["StartLimitBurst"]
    assert sorted(unit["LoadCredential"]) == ["mqtt-password:mpox-kiosk.mqtt-password",
                                              "staff-password-hash:mpox-kiosk.staff-password-hash"]
    assert unit["LimitCORE"] == ["0"]  # a core dump would hold camera frames


def test_the_hardening_leaves_the_camera_the_network_and_openvino_alone():
    unit = settings()
    assert unit["DevicePolicy"] == ["closed"] and "yes" not in unit.get("PrivateDevices", [])  # it would hide the camera
    assert sorted(unit["DeviceAllow"]) == ["char-dma_heap rw", "char-media rw", "char-video4linux rw"]
    assert unit["User"] == ["mpox-kiosk"] and unit["SupplementaryGroups"] == ["video"] and unit["ProtectSystem"] == ["strict"]
    # the web pages on 127.0.0.1:8080 and the uplink to a broker
    for key in ("PrivateNetwork", "IPAddressDeny", "IPAddressAllow", "RestrictNetworkInterfaces", "SocketBindDeny"):
        assert key not in unit
    families = unit["RestrictAddressFamilies"][0].split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families)
    assert "yes" not in unit.get("MemoryDenyWriteExecute", [])  # OpenVINO's CPU plugin JIT-compiles its kernels

