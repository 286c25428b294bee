"""The kiosk's runtime dependencies are pinned once (deploy/lock.sh): a lock file for Raspberry Pi
OS Bookworm's Python 3.11 on aarch64 and one for x86-64, every package with its version and
hashes, in step with pyproject.toml; the test venv runs the x86-64 lock's versions, so what
CI tests is what a kiosk installs (the emulated Pi's are checked in tests/pi)."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
ARCHES = ("aarch64", "x86_64")
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(arch: str) -> list[tuple[str, str, list[str]]]:
    """(name, version, hashes) of each package in deploy/requirements-ARCH.lock."""
    out = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", (REPO / "deploy" / f"requirements-{arch}.lock").read_text()):
        m = ENTRY.match(block)
        if m:
            out.append((canonical(m[1]), m[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return out


def locked(arch: str) -> dict[str, str]:
    return {name: v for name, v, _ in entries(arch)}


def pyproject_pins(*extras: str) -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for e in extras for d in project["optional-dependencies"][e]]
    pins = {}
    for d in deps:
        m = ENTRY.match(d.split(";")[0].strip())
        assert m, f"pyproject.toml: runtime dependency {d!r} is not pinned with =="
        pins[canonical(m[1])] = m[2]
    return pins


@pytest.mark.parametrize("arch", ARCHES)
def test_every_locked_package_has_a_version_and_hashes(arch):
    found = entries(arch)
    assert len(found) >= len(pyproject_pins())
    for name, v, hashes in found:
        assert hashes, f"{name}=={v} has no hash in requirements-{arch}.lock"


@pytest.mark.parametrize("arch, extras", [("aarch64", ("raspios",)), ("x86_64", ())])
def test_the_locks_follow_pyproject(arch, extras):
    """Every runtime dependency (and the Pi's raspios extra) at pyproject's version: after a
    change there, run deploy/lock.sh."""
    lock = locked(arch)
    for name, v in pyproject_pins(*extras).items():
        assert lock.get(name) == v, f"{name}: pyproject.toml says {v}, requirements-{arch}.lock {lock.get(name)}: run deploy/lock.sh"
    assert "torch" not in lock and "nncf" not in lock  # the edge runtime never needs them


def test_both_machines_run_the_same_versions():
    """One set of versions, two platforms: the Pi differs only by its extra."""
    pi, pc = locked("aarch64"), locked("x86_64")
    assert {k: v for k, v in pi.items() if k not in pyproject_pins("raspios").keys() - pyproject_pins().keys()} == pc


def test_the_test_venv_runs_the_x86_64_lock():
    """`make` installs the lock before the training and test extras; none of those may move a
    runtime package off its locked version, or CI would test something no kiosk installs."""
    wrong = {}
    for name, v in locked("x86_64").items():
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have != v:
            wrong[name] = (v, have)
    assert not wrong, f"locked vs installed: {wrong}"
