"""The kiosk's state folder (`state_dir`), named once: what lives where.

    audit.sqlite     the audit log (edge/store.py)
    audit.journal    rows the database refused, written at the next start
    kiosk.lock       one kiosk per state folder
    frames/          kept frames (store.keep_best_frame)
    models/          installed model bundles (edge/modelstore.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def audit_db(self) -> Path:
        return Path(self.root) / "audit.sqlite"

    @property
    def journal(self) -> Path:
        return Path(self.root) / "audit.journal"

    @property
    def lock(self) -> Path:
        return Path(self.root) / "kiosk.lock"

    @property
    def frames(self) -> Path:
        return Path(self.root) / "frames"

    @property
    def models(self) -> Path:
        return Path(self.root) / "models"
