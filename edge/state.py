"""The kiosk's state folder (`state_dir`), named once: what lives where, and how the kiosk
writes there.

    audit.sqlite      the audit log (edge/store.py), with its -wal and -shm files
    audit.journal     rows the database refused, written at the next start
    audit.replaying   a journal being written to the database (renamed so a crash replays it)
    audit.unreadable  journal lines a start could not write (a newer kiosk's, damaged): kept
    audit.reserve     disk space held for the journal, given up when the disk is full
    kiosk.lock        one kiosk per state folder
    frames/           kept frames (store.keep_best_frame)
    models/           installed model bundles (edge/modelstore.py)
    demo-frames-*/    the demo's drawn frames (edge/sources/demo.py)

Nothing the kiosk creates here is written through a symbolic link: a link planted in the
folder (by anyone who can write there) would otherwise make the kiosk overwrite a file
outside it. `open_nofollow` and `refuse_symlink` say so in one line instead.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def audit_db(self) -> Path:
        return Path(self.root) / "audit.sqlite"

    @property
    def audit_db_files(self) -> tuple[Path, Path, Path]:
        """The database and the two files SQLite keeps beside it in WAL mode."""
        db = self.audit_db
        return db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")

    @property
    def journal(self) -> Path:
        return Path(self.root) / "audit.journal"

    @property
    def replaying(self) -> Path:
        return Path(self.root) / "audit.replaying"

    @property
    def unreadable(self) -> Path:
        return Path(self.root) / "audit.unreadable"

    @property
    def reserve(self) -> Path:
        return Path(self.root) / "audit.reserve"

    @property
    def lock(self) -> Path:
        return Path(self.root) / "kiosk.lock"

    @property
    def frames(self) -> Path:
        return Path(self.root) / "frames"

    @property
    def models(self) -> Path:
        return Path(self.root) / "models"


def symlink_refused(path: Path) -> OSError:
    return OSError(errno.ELOOP, f"{path} is a symbolic link: the kiosk never writes through one (remove it)")


def refuse_symlink(path: Path) -> None:
    """OSError (one clear line) when path is a symbolic link; nothing when it is anything else
    or absent."""
    if Path(path).is_symlink():
        raise symlink_refused(path)


def open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that refuses a symbolic link as the file itself (O_NOFOLLOW), in one clear line."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise symlink_refused(path) from None
        raise
