"""`mpox check`: the self-test a technician runs on site. Each check is one OK/FAIL line."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from edge.config import KioskConfig
from edge.errors import KioskError
from edge.models import active_model, probe_model

MIN_FREE_MB = 200
CAMERA_SECONDS = 3.0
BUILD_YEAR = 2026  # a clock before this year has lost its time (no RTC, no network time)


def check_model(cfg: KioskConfig) -> str:
    m = active_model(cfg)
    engine = probe_model(m)
    i = engine.info
    verified = "checksum OK" if m.verify_checksum else "checksum NOT verified (config)"
    where = "" if m.path == cfg.model.path else f" (installed: {m.path.parent.name})"
    return (f"{i.name} {i.version} {i.extra.get('precision', 'float')}{where}, {verified}, probe frame OK, "
            f"runs at {engine.precision} on {engine.device}")


def check_native(cfg: KioskConfig) -> str:
    from edge import preprocess

    if preprocess.BACKEND.startswith("native"):
        return preprocess.BACKEND
    raise KioskError(f"native extension not active ({preprocess.BACKEND}): reinstall with a C++ compiler")


def check_camera(cfg: KioskConfig) -> str:
    from edge.sources import open_source

    source = open_source(cfg.source, cfg.quality.box)
    source.open()
    try:
        n, shape, t0 = 0, None, time.monotonic()
        while time.monotonic() - t0 < CAMERA_SECONDS:
            frame = source.read()
            if frame is not None:
                n, shape = n + 1, frame.shape
        if n == 0:
            raise KioskError(f"{source.name} delivered no frame in {CAMERA_SECONDS:g} s")
        return f"{source.name}: {n / (time.monotonic() - t0):.1f} fps at {shape[1]}x{shape[0]}"
    finally:
        source.close()


def check_state_dir(cfg: KioskConfig) -> str:
    """The audit store opened read-write as the kiosk opens it: folder, lock, database,
    schema, and any journal an earlier run left (written now)."""
    from edge.errors import StoreError
    from edge.store import AuditLog, ModelStamp

    try:
        store = AuditLog(Path(cfg.state_dir), cfg.store, cfg.kiosk_id, ModelStamp("check", "", ""))
    except StoreError as e:
        if "another kiosk" in str(e):
            return f"{cfg.state_dir}: in use by the running kiosk ({e})"
        raise
    try:
        probe = Path(cfg.state_dir) / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        return f"{store.path} opens read-write, {store.count()} screenings"
    finally:
        store.close()


def check_disk(cfg: KioskConfig) -> str:
    free = shutil.disk_usage(Path(cfg.state_dir) if Path(cfg.state_dir).exists() else Path.cwd()).free / 1e6
    if free < MIN_FREE_MB:
        raise KioskError(f"only {free:.0f} MB free (need {MIN_FREE_MB} MB)")
    return f"{free:.0f} MB free"


def check_clock(cfg: KioskConfig) -> str:
    now = datetime.now(timezone.utc)
    if now.year < BUILD_YEAR:
        raise KioskError(f"clock says {now:%Y-%m-%d}: set the time (audit rows carry it)")
    return f"{now:%Y-%m-%d %H:%M:%S} UTC"


CHECKS: dict[str, Callable[[KioskConfig], str]] = {
    "model": check_model, "native extension": check_native, "camera": check_camera, "state folder": check_state_dir,
    "free disk": check_disk, "clock": check_clock,
}


def run_checks(cfg: KioskConfig) -> list[tuple[str, bool, str]]:
    results = []
    for name, check in CHECKS.items():
        try:
            results.append((name, True, check(cfg)))
        except (KioskError, OSError, RuntimeError) as e:
            results.append((name, False, str(e)))
    return results
