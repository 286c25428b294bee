"""Installed models: a signed bundle in, checked, swapped in atomically, rolled back by itself.

    <state_dir>/models/
        <version>-<sha8>/       one installed bundle: the IR, SHA256SUMS, SHA256SUMS.sig, and markers:
                                CONFIRMED (it ran healthy), STARTS (starts while on trial), REJECTED (rolled back: why)
        current -> <folder>     what the kiosk runs; absent: model.path (the packaged model)
        previous -> <folder>    what a rollback returns to; absent: model.path

Every change of `current` or `previous` is one rename(2) of a new symlink over the old, and a
new folder is complete and fsynced before any link points to it, so a power cut at any moment
leaves the kiosk on a whole model: the old one until the final rename, the new one after.

A new model is on trial until the running kiosk confirms it (edge/outputs/rollout.py): it is
rolled back when it fails to load or to classify a probe frame at start, when it has not
processed `rollout.trial_frames` frames within `rollout.trial_s`, or when the kiosk has started
on it `rollout.trial_starts` times without confirming it (a crash, a hang the service's
watchdog killed, a power cut). `previous` always names a confirmed model (or none).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import signal
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import KioskError

if TYPE_CHECKING:
    from edge.config import KioskConfig, ModelConfig
    from edge.engine import Engine

log = logging.getLogger(__name__)

CURRENT, PREVIOUS = "current", "previous"
CONFIRMED, STARTS, REJECTED = "CONFIRMED", "STARTS", "REJECTED"
PACKAGED = "the packaged model (model.path)"
KILL_AT_ENV = "MPOX_ROLLOUT_KILL_AT"  # tests only: SIGKILL the installing process right after this step
STEPS = ("downloaded", "verified", "checked", "staged", "previous-linked", "installed")


class RolloutError(KioskError):
    """A bundle was refused or a rollout step failed; nothing was changed."""


class InstallOutcome(Enum):
    INSTALLED = "installed"
    ALREADY_CURRENT = "already current"


@dataclass(frozen=True)
class InstallResult:
    outcome: InstallOutcome
    name: str  # the model's name and version, from its rt_info
    version: str
    folder: Path  # where it is installed
    fallback: str  # what a rollback would return to

    def line(self) -> str:
        if self.outcome is InstallOutcome.ALREADY_CURRENT:
            return f"{self.name} {self.version} is already the current model ({self.folder.name})"
        return (f"installed {self.name} {self.version} as {self.folder.name}, on trial until the kiosk runs it healthy; "
                f"rollback goes to {self.fallback}")


def _step(name: str) -> None:
    log.debug("install step: %s", name)
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _sync_dir(folder: Path) -> None:
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
        return cls(Path(cfg.state_dir) / "models")

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
        _sync_dir(path.parent)

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

    def _link(self, link: str, folder: Path) -> None:
        tmp = self.root / f".{link}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(folder.name, tmp)  # relative: the state folder may move
        os.replace(tmp, self.root / link)  # rename(2): atomic
        _sync_dir(self.root)

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
            _sync_dir(self.root)
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


def active_model(cfg: KioskConfig) -> ModelConfig:
    """The model section the kiosk runs with: the installed current model if there is one
    (checked against its own SHA256SUMS), else the config's model.path."""
    store = ModelStore.of(cfg)
    folder = store.current()
    if folder is None:
        return cfg.model
    return cfg.model.model_copy(update={"path": store.model_xml(folder), "checksums": folder / "SHA256SUMS"})


def engine_for_start(cfg: KioskConfig) -> Engine:
    """The engine a starting kiosk runs. An installed model that does not load or classify a
    probe frame is rolled back (one log line) and the previous one loaded; one not yet
    confirmed (on trial) also when the kiosk has started on it too often."""
    from edge.check import probe_model
    from edge.errors import ModelError

    store = ModelStore.of(cfg)
    while (folder := store.current()) is not None:
        if not store.confirmed(folder):
            starts = store.count_start(folder)
            if starts > cfg.rollout.trial_starts:
                store.rollback(folder, f"the kiosk started {starts - 1} times on it without it becoming healthy "
                                       "(a crash, a hang or a power cut)")
                continue
            log.info("model %s on trial (start %d of %d): confirmed after %d frames", folder.name, starts,
                     cfg.rollout.trial_starts, cfg.rollout.trial_frames)
        try:
            return probe_model(active_model(cfg))
        except (ModelError, RolloutError, RuntimeError) as e:  # RuntimeError: OpenVINO on the probe frame
            store.rollback(folder, f"does not load: {str(e).strip().splitlines()[0]}")
    from edge.kiosk import load_engine

    return load_engine(cfg)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # only the URL given: a redirect becomes an HTTPError
        return None


def fetch(source: str | Path, dest: Path, max_bytes: int, timeout: float) -> Path:
    """The bundle as a local file: a path as it is, an http(s) URL downloaded to dest with
    no proxy, no redirect and at most max_bytes."""
    text = str(source)
    if "://" not in text:
        path = Path(source)
        if not path.is_file():
            raise RolloutError(f"bundle not found: {path}")
        return path
    if not text.startswith(("http://", "https://")):
        raise RolloutError(f"bundle URL must be http:// or https://, got {text.split('://')[0]}://")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        with opener.open(text, timeout=timeout) as response, open(dest, "wb") as f:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise RolloutError(f"bundle at {text} is {int(length) / 1e6:.1f} MB, more than rollout.max_bundle_mb "
                                   f"({max_bytes / 1e6:g} MB)")
            got = 0
            while block := response.read(1 << 16):
                got += len(block)
                if got > max_bytes:
                    raise RolloutError(f"bundle at {text} is larger than rollout.max_bundle_mb ({max_bytes / 1e6:g} MB)")
                f.write(block)
    except urllib.error.HTTPError as e:
        hint = " (redirects are not followed: give the bundle's own URL)" if 300 <= e.code < 400 else ""
        raise RolloutError(f"cannot download {text}: HTTP {e.code} {e.reason}{hint}") from None
    except (urllib.error.URLError, OSError) as e:
        raise RolloutError(f"cannot download {text}: {getattr(e, 'reason', e)}") from None
    return dest


def _version_slug(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", version)[:64]


def _folder_name(version: str, sums_sha256: str) -> str:
    return f"{_version_slug(version)}-{sums_sha256[:8]}"


def rolled_back(cfg: KioskConfig, version: str) -> str | None:
    """Why this kiosk rolled back a model of this version (its REJECTED note), or None: a
    fleet announcement of it is then not even downloaded (install_bundle would refuse it)."""
    store = ModelStore.of(cfg)
    if not store.root.is_dir():
        return None
    for note in sorted(store.root.glob(f"*/{REJECTED}")):
        if note.parent.name.rsplit("-", 1)[0] == _version_slug(version):
            try:
                return note.read_text().strip()
            except OSError:
                return "rolled back"
    return None


def install_bundle(source: Path | str, cfg: KioskConfig, sha256: str | None = None, version: str | None = None,
                   force: bool = False) -> InstallResult:
    """Verify, check and install a bundle (a path or an http(s) URL of the authority's server);
    the running kiosk switches to it when idle. `sha256` (of the bundle file) and `version` (of
    the model), when given, as a fleet announcement carries them, must match. `force`
    installs a bundle this kiosk rolled back before. Raises RolloutError (one line) and
    changes nothing when the bundle is refused."""
    from edge.bundle import BundleError, load_public_key, sha256_of, unpack_verified
    from edge.check import probe_model
    from edge.errors import ModelError

    r = cfg.rollout
    if r.public_key is None:
        raise RolloutError("rollout.public_key is not set in the config: no bundle can be trusted")
    key = load_public_key(r.public_key)
    max_bytes = int(r.max_bundle_mb * 1e6)
    store = ModelStore.of(cfg)
    store.root.mkdir(parents=True, exist_ok=True)
    with store.lock():
        store.clean()
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=store.root))
        fd, download = tempfile.mkstemp(prefix=".download-", suffix=".tar", dir=store.root)
        os.close(fd)
        try:
            bundle = fetch(source, Path(download), max_bytes, r.download_timeout_s)
            if sha256 is not None and sha256_of(bundle) != sha256.lower():
                raise RolloutError(f"bundle's sha256 is not the announced {sha256[:12]}...: damaged or replaced in transit")
            _step("downloaded")
            verified = unpack_verified(bundle, key, f"rollout.public_key ({r.public_key})", staging, max_bytes)
            _step("verified")
            engine = probe_model(cfg.model.model_copy(update={"path": verified.xml, "checksums": staging / "SHA256SUMS",
                                                             "verify_checksum": True}))
            info = engine.info
            del engine
            if version is not None and info.version != version:
                raise RolloutError(f"bundle holds {info.name} {info.version}, not the announced version {version}")
            _step("checked")
            final = store.root / _folder_name(info.version, verified.sums_sha256)
            current = store.current()
            if final == current:
                return InstallResult(InstallOutcome.ALREADY_CURRENT, info.name, info.version, final, _fallback(store))
            if (final / REJECTED).exists() and not force:
                why = (final / REJECTED).read_text().strip()
                raise RolloutError(f"{info.name} {info.version} was rolled back on this kiosk ({why}): "
                                   "install it with --force to try again")
            if final.exists() and final == store.previous():
                from edge.engine import verify_checksums

                verify_checksums(store.model_xml(final), final / "SHA256SUMS")  # the same bytes: keep the known-good copy
            else:
                if final.exists():
                    shutil.rmtree(final)  # an earlier copy that is neither current nor previous
                staging.chmod(0o755)  # mkdtemp's 0700 would hide it from a kiosk user other than the installer
                _sync_dir(staging)
                os.rename(staging, final)
                _sync_dir(store.root)
            _step("staged")
            if current is not None and store.confirmed(current):
                store._link(PREVIOUS, current)  # an unconfirmed current is dropped: previous stays a known-good model
                _step("previous-linked")
            store._link(CURRENT, final)
            _step("installed")
            store.clean()
            return InstallResult(InstallOutcome.INSTALLED, info.name, info.version, final, _fallback(store))
        except (BundleError, ModelError) as e:
            raise RolloutError(str(e)) from None
        except RuntimeError as e:  # OpenVINO failing on the probe frame
            raise RolloutError(f"the model fails on a probe frame: {str(e).strip().splitlines()[0]}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            Path(download).unlink(missing_ok=True)


def _fallback(store: ModelStore) -> str:
    previous = store.previous()
    return previous.name if previous is not None else PACKAGED


def rollback_by_hand(cfg: KioskConfig) -> str:
    """`mpox models rollback`: the previous model (or the packaged one) becomes current."""
    store = ModelStore.of(cfg)
    folder = store.current() if store.root.is_dir() else None
    if folder is None:
        raise RolloutError(f"no installed model to roll back: the kiosk runs {PACKAGED}")
    now = store.rollback(folder, "rolled back by hand (mpox models rollback)")
    if now is None:
        raise RolloutError("the current model changed meanwhile: run the command again")
    return now


def describe(cfg: KioskConfig) -> list[str]:
    """`mpox models status`: what runs, what a rollback returns to, what was rejected."""
    store = ModelStore.of(cfg)
    current = store.current() if store.root.is_dir() else None
    previous = store.previous() if store.root.is_dir() else None
    lines = []
    if current is None:
        lines.append(f"current:  {PACKAGED}: {cfg.model.path}")
    else:
        state = "confirmed" if store.confirmed(current) else "on trial"
        lines.append(f"current:  {current.name} ({store.model_xml(current).name}, {state})")
        lines.append(f"previous: {previous.name if previous is not None else PACKAGED}")
    if store.root.is_dir():
        for p in sorted(store.root.glob(f"*/{REJECTED}")):
            lines.append(f"rejected: {p.parent.name}: {p.read_text().strip()}")
    return lines
