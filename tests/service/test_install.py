"""deploy/install.sh: clean under shellcheck; its dry run (as root and as nobody) changes
nothing and names the right packages and paths for a Raspberry Pi and an x86-64 PC; the config
it writes is valid and puts the state where the service may write; --uninstall reverses it."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from edge.config import KioskConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
VENV, CONFIG = Path("/opt/mpox-kiosk/venv/bin/python"), Path("/etc/mpox-kiosk/kiosk.yaml")
MUTATORS = ("apt-get", "systemctl", "python3", "pip", "install", "rm", "mkdir", "mv", "cp", "chmod", "chown", "ln", "env",
            "useradd", "userdel", "usermod")


@pytest.fixture
def checkout():
    """A copy of what install.sh reads (deploy/), readable by an unprivileged user, plus a
    PATH whose commands that change a system only write down that they were called."""
    top = Path(tempfile.mkdtemp(dir="/tmp"))
    deploy = top / "src" / "deploy"
    deploy.mkdir(parents=True)
    for name in ("install.sh", "mpox-kiosk.service", "kiosk.example.yaml", "requirements-aarch64.lock", "requirements-x86_64.lock"):
        shutil.copy2(ROOT / "deploy" / name, deploy / name)
    (deploy / "mpox-kiosk-browser.service").unlink(missing_ok=True)
    trap = top / "bin"
    trap.mkdir()
    called = top / "called"
    for name in MUTATORS:
        (trap / name).write_text(f"#!/bin/sh\necho {name} \"$@\" >> {called}\nexit 1\n")
    for p in [top, *top.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IRWXU | stat.S_IROTH | stat.S_IXOTH | (stat.S_IWOTH if p == top else 0))
    yield top / "src", trap, called
    shutil.rmtree(top)


def plan(checkout, *args, platform="pc", as_nobody=False, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    src, trap, called = checkout
    env = {"PATH": f"{trap}:/usr/bin:/bin", "MPOX_PLATFORM": platform, "LC_ALL": "C", **(env_extra or {})}
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if as_nobody and os.geteuid() == 0 else []
    result = subprocess.run([*prefix, "bash", str(src / "deploy" / "install.sh"), *args], capture_output=True, text=True, env=env)
    assert not called.exists(), f"a dry run changed the system: {called.read_text()}"
    return result


def actions(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


def test_shellcheck_finds_nothing():
    result = subprocess.run(["shellcheck", str(ROOT / "deploy" / "install.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_dry_run_on_a_pi(checkout):
    src = checkout[0]
    steps = actions(plan(checkout, "--dry-run", platform="pi"))
    assert "apt-get update" in steps
    apt = next(s for s in steps if "apt-get install" in s).split()
    assert {"python3-picamera2", "python3-venv", "python3-dev"} <= set(apt) and "chromium" not in apt
    assert made_or_kept(steps, "python3 -m venv --system-site-packages /opt/mpox-kiosk/venv", VENV)
    pip = "/opt/mpox-kiosk/venv/bin/pip install --no-cache-dir --quiet"
    lock = f"{pip} --require-hashes -r {src}/deploy/requirements-aarch64.lock"  # with the raspios extra's simplejpeg
    assert steps.index(lock) < steps.index(f"{pip} --no-deps {src}")  # hash-checked, then the kiosk alone
    assert_installs_the_service(steps, src)


def test_dry_run_on_a_pc(checkout):
    src = checkout[0]
    steps = actions(plan(checkout, "--dry-run", platform="pc"))
    apt = next(s for s in steps if "apt-get install" in s).split()
    assert {"python3-venv", "python3-dev", "build-essential"} <= set(apt) and "python3-picamera2" not in apt
    assert not any("--system-site-packages" in s for s in steps)
    assert made_or_kept(steps, "python3 -m venv /opt/mpox-kiosk/venv", VENV)
    pip = "/opt/mpox-kiosk/venv/bin/pip install --no-cache-dir --quiet"
    lock = f"{pip} --require-hashes -r {src}/deploy/requirements-x86_64.lock"
    assert steps.index(lock) < steps.index(f"{pip} --no-deps {src}")  # locked runtime only: no extras, nothing unlocked
    assert_installs_the_service(steps, src)
    assert not any("mpox-kiosk-browser" in s or "--global" in s for s in steps)  # no browser unit in this checkout


def test_the_browser_unit_is_enabled_for_the_desktop_session_when_the_checkout_has_one(checkout):
    """A user unit (it needs the desktop session): in /etc/systemd/user, enabled for every user."""
    src = checkout[0]
    (src / "deploy" / "mpox-kiosk-browser.service").write_text("[Service]\nExecStart=/usr/bin/chromium --kiosk\n")
    steps = actions(plan(checkout, "--dry-run"))
    assert {"chromium", "curl"} <= set(next(s for s in steps if "apt-get install" in s).split())
    install = f"install -m 0644 {src}/deploy/mpox-kiosk-browser.service /etc/systemd/user/mpox-kiosk-browser.service"
    enable = "systemctl --global enable mpox-kiosk-browser.service"
    assert steps.index(install) < steps.index(enable)
    assert not any("/etc/systemd/system/mpox-kiosk-browser" in s for s in steps)
    assert not any("mpox-kiosk-browser" in s for s in steps if s.startswith(("systemctl restart", "systemctl start")))
    assert_installs_the_service(steps, src)


def made_or_kept(steps: list[str], step: str, made: Path) -> bool:
    """The step is planned on a machine without it; one that has it keeps it (idempotent)."""
    return (step in steps) != made.exists()


def has_user() -> bool:
    return subprocess.run(["id", "mpox-kiosk"], capture_output=True).returncode == 0


def assert_installs_the_service(steps: list[str], src: Path) -> None:
    useradd = ("useradd --system --user-group --groups video --home-dir /var/lib/mpox-kiosk --no-create-home "
               "--shell /usr/sbin/nologin mpox-kiosk")
    assert (useradd in steps) != has_user()  # the unit's User=
    assert any(s.startswith(f"write {CONFIG} (deploy/kiosk.example.yaml") for s in steps) != CONFIG.exists()  # never overwritten
    assert f"install -m 0644 {src}/deploy/mpox-kiosk.service /etc/systemd/system/mpox-kiosk.service" in steps
    assert steps[-3:] == ["systemctl daemon-reload", "systemctl enable mpox-kiosk.service", "systemctl restart mpox-kiosk.service"]


def test_uninstall_keeps_config_and_state_unless_purged(checkout):
    result = plan(checkout, "--uninstall", "--dry-run")
    steps = actions(result)
    assert "rm -rf /opt/mpox-kiosk" in steps and "systemctl daemon-reload" in steps
    assert not any("/etc/mpox-kiosk" in s or "/var/lib/mpox-kiosk" in s for s in steps)
    assert ("systemctl disable --now mpox-kiosk.service" in steps) == Path("/etc/systemd/system/mpox-kiosk.service").exists()
    browser = Path("/etc/systemd/user/mpox-kiosk-browser.service").exists()
    assert ("systemctl --global disable mpox-kiosk-browser.service" in steps) == browser
    assert ("rm -f /etc/systemd/user/mpox-kiosk-browser.service" in steps) == browser
    assert ("# not installed: /etc/systemd/user/mpox-kiosk-browser.service" in result.stdout) != browser  # where it looks
    purge = actions(plan(checkout, "--uninstall", "--purge", "--dry-run"))
    assert ("rm -rf /etc/mpox-kiosk /var/lib/mpox-kiosk /etc/credstore/mpox-kiosk.staff-password-hash "
            "/etc/credstore/mpox-kiosk.mqtt-password") in purge
    assert ("userdel mpox-kiosk" in purge) == has_user()


def test_unprivileged_dry_run_works_and_a_real_run_is_refused_in_one_line(checkout):
    assert actions(plan(checkout, "--dry-run", as_nobody=True))
    if os.geteuid() == 0:
        refused = plan(checkout, as_nobody=True)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.startswith("install.sh: run it as root") and len(refused.stderr.splitlines()) == 1


@pytest.mark.parametrize("platform,source", [
    ("pi", {"kind": "picamera2", "width": 448, "height": 336, "target": None}),
    ("pc", {"kind": "device", "width": 1280, "height": 720, "target": "/dev/video0"}),
])
def test_the_installed_config_is_valid_and_keeps_state_in_var_lib(checkout, tmp_path, platform, source):
    (tmp_path / "machine-id").write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    result = plan(checkout, "--print-config", platform=platform, env_extra={"MPOX_MACHINE_ID_FILE": str(tmp_path / "machine-id")})
    assert result.returncode == 0, result.stderr
    (tmp_path / "kiosk.yaml").write_text(result.stdout)
    cfg = load_config(tmp_path / "kiosk.yaml")
    assert cfg.state_dir == Path("/var/lib/mpox-kiosk")  # the unit's StateDirectory=mpox-kiosk
    assert cfg.kiosk_id == "kiosk-" + hashlib.sha256(b"mpox-kiosk:3d1219c7c4c5404aaa1f6d2a48adfda4").hexdigest()[:8]
    assert {k: getattr(cfg.source, k) for k in source} == source
    shipped = KioskConfig()
    assert cfg.model_dump(exclude={"kiosk_id", "state_dir", "source"}) == shipped.model_dump(exclude={"kiosk_id", "state_dir", "source"})
    assert cfg.source.model_dump(exclude=set(source)) == shipped.source.model_dump(exclude=set(source))


def test_each_machine_gets_its_own_kiosk_id_and_none_reveals_its_machine_id(checkout, tmp_path):
    """Every new Pi is called raspberrypi: the id comes from /etc/machine-id, hashed."""
    ids = []
    for n, machine in enumerate(["3d1219c7c4c5404aaa1f6d2a48adfda4", "0f5e9c1b2a3d4c5e6f708192a3b4c5d6"]):
        (tmp_path / f"m{n}").write_text(machine + "\n")
        out = plan(checkout, "--print-config", env_extra={"MPOX_MACHINE_ID_FILE": str(tmp_path / f"m{n}")}).stdout
        (tmp_path / "k.yaml").write_text(out)
        ids.append(load_config(tmp_path / "k.yaml").kiosk_id)
        assert machine[:8] not in out
    assert ids[0] != ids[1] and all(len(i) == len("kiosk-") + 8 for i in ids)
    again = plan(checkout, "--print-config", env_extra={"MPOX_MACHINE_ID_FILE": str(tmp_path / "m0")}).stdout
    assert f'kiosk_id: "{ids[0]}"' in again  # stable: a reinstall keeps it
    none = plan(checkout, "--print-config", env_extra={"MPOX_MACHINE_ID_FILE": str(tmp_path / "absent")})
    assert none.returncode == 0 and f'kiosk_id: "{os.uname().nodename}"' in none.stdout
    assert none.stderr.startswith("install.sh: no machine id in") and len(none.stderr.splitlines()) == 1


def test_bad_arguments_are_refused(checkout):
    result = plan(checkout, "--purge", "--dry-run")
    assert result.returncode == 1 and result.stderr == "install.sh: --purge goes with --uninstall\n"
    assert plan(checkout, "--frobnicate").returncode == 2
    result = plan(checkout, "--dry-run", platform="mac")
    assert result.returncode == 1 and "MPOX_PLATFORM must be pi or pc" in result.stderr
