"""Installed models on disk: the folder layout, its links and markers, changed atomically.

    <state_dir>/models/
        <version>-<sha8>/       one installed bundle: the IR, SHA256SUMS, SHA256SUMS.sig, and markers:
                                CONFIRMED (it ran healthy), STARTS (starts while on trial), REJECTED (rolled back: why)
        current -> <folder>     what the kiosk runs; absent: model.path (the packaged model)
        previous -> <folder>    what a rollback returns to; absent: model.path

Every change of `current` or `previous` is one rename(2) of a new symlink over the old, and a
new folder is complete and fsynced before any link points to it, so a power cut at any moment
leaves the kiosk on a whole model: the old one until the final rename, the new one after.
Only the file system here: installing is edge/rollout.py's, choosing and loading edge/models.py's.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import KioskError
from edge.state import StateDir

if TYPE_CHECKING:
    from edge.config import KioskConfig

log = logging.getLogger(__name__)

CURRENT, PREVIOUS = "current", "previous"
CONFIRMED, STARTS, REJECTED = "CONFIRMED", "STARTS", "REJECTED"
PACKAGED = "the packaged model (model.path)"


class RolloutError(KioskError):
    """A bundle was refused or a rollout step failed; nothing was changed."""


def sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

class ModelStore:
    """The installed models under <state_dir>/models (created only by an install)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, cfg: KioskConfig) -> ModelStore:
        return cls(StateDir(cfg.state_dir).models)

    def _target(self, link: str) -> Path | None:
        p = self.root / link
        if not p.is_symlink():
            return None
        target = self.root / os.readlink(p)
        return target if target.is_dir() else None

    def current(self) -> Path | None:
        return self._target(CURRENT)

    def previous(self) -> Path | None:
        return self._target(PREVIOUS)

    def confirmed(self, folder: Path) -> bool:
        return (folder / CONFIRMED).exists()

    def model_xml(self, folder: Path) -> Path:
        xmls = sorted(folder.glob("*.xml"))
        if len(xmls) != 1:
            raise RolloutError(f"installed model folder {folder} holds {len(xmls)} .xml files, expected one")
        return xmls[0]

    def _write(self, path: Path, text: str) -> None:
        """Whole or not at all: a temporary file fsynced, then renamed over."""
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_dir(path.parent)

    def confirm(self, folder: Path) -> None:
        self._write(folder / CONFIRMED, "")

    def count_start(self, folder: Path) -> int:
        """One more start on this (unconfirmed) model; returns the count including this one."""
        try:
            n = int((folder / STARTS).read_text() or 0) + 1
        except (OSError, ValueError):
            n = 1
        self._write(folder / STARTS, str(n))
        return n

    def link(self, link: str, folder: Path) -> None:
        tmp = self.root / f".{link}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(folder.name, tmp)  # relative: the state folder may move
        os.replace(tmp, self.root / link)  # rename(2): atomic
        sync_dir(self.root)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One change at a time (an install by hand and one from the fleet, a rollback)."""
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def rollback(self, bad: Path, reason: str) -> str | None:
        """Make `previous` current again (or the packaged model) if `bad` is still current;
        mark `bad` rejected with the reason. Returns what now runs, None if `bad` was not current."""
        with self.lock():
            if self.current() != bad:
                return None
            self._write(bad / REJECTED, reason + "\n")
            back = self.previous()
            if back is not None and back != bad:
                os.replace(self.root / PREVIOUS, self.root / CURRENT)  # one rename: previous becomes current
            else:
                (self.root / CURRENT).unlink()
                (self.root / PREVIOUS).unlink(missing_ok=True)
            sync_dir(self.root)
        now = back.name if back is not None and back != bad else PACKAGED
        log.warning("model %s rolled back to %s: %s", bad.name, now, reason)
        return now

    def clean(self) -> None:
        """Leftovers of an install that was cut off, and models neither current nor previous
        (a rejected one keeps only its REJECTED note, so it is not installed again by itself)."""
        keep = {self.current(), self.previous()}
        for p in self.root.iterdir():
            if p.name.startswith((".staging-", ".download-")) or p.name in (f".{CURRENT}.tmp", f".{PREVIOUS}.tmp"):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            elif p.is_dir() and not p.is_symlink() and not p.name.startswith(".") and p not in keep:
                if (p / REJECTED).exists():
                    for f in p.iterdir():
                        if f.name != REJECTED:
                            f.unlink()
                else:
                    shutil.rmtree(p)
