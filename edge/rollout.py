"""Installing a signed bundle: downloaded, verified, checked as the kiosk loads it, swapped in
atomically (edge/modelstore.py holds the folder layout), rolled back by hand or by the kiosk.

Before anything is swapped in, the model must answer its bundle's probe pictures (edge/probeset.py)
at least as well as the authority required when it signed it: the install probe alone passes
random weights and swapped labels. A bundle without a probe set (made before there were any)
is refused unless `mpox models install --allow-unprobed`: such a bundle proves only that its
model runs, and the authority makes a new one with `mpox models bundle` in a minute, while a
wrong model that goes in screens people until someone notices. An announcement cannot waive
it: the fleet gets probed bundles only.

A new model is on trial until the running kiosk confirms it (edge/outputs/rollout.py): it is
rolled back when it fails to load or to classify a probe frame at start (edge/models.py), when
it has not processed `rollout.trial_frames` frames within `rollout.trial_s`, or when the kiosk
has started on it `rollout.trial_starts` times without confirming it (a crash, a hang the
service's watchdog killed, a power cut). `previous` always names a confirmed model (or none).
"""

from __future__ import annotations

import logging
import os
import pwd
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

import openvino as ov

from edge.bundle import BundleError, load_public_key, sha256_of, unpack_verified
from edge.engine import Engine, model_info, read_model, verify_checksums
from edge.errors import ImageError, ModelError
from edge.images import read_image
from edge.models import probe_model
from edge.modelstore import CURRENT, PACKAGED, PREVIOUS, REJECTED, ModelStore, RolloutError, sync_dir
from edge.probeset import Agreement, ProbeSet, agreement

if TYPE_CHECKING:
    from edge.config import KioskConfig

log = logging.getLogger(__name__)

KILL_AT_ENV = "MPOX_ROLLOUT_KILL_AT"  # tests only: SIGKILL the installing process right after this step
STEPS = ("downloaded", "verified", "checked", "staged", "previous-linked", "installed")


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
    probed: str = "no probe set"  # how it answered its probe pictures

    def line(self) -> str:
        if self.outcome is InstallOutcome.ALREADY_CURRENT:
            return f"{self.name} {self.version} is already the current model ({self.folder.name})"
        return (f"installed {self.name} {self.version} as {self.folder.name} ({self.probed}), on trial until the kiosk "
                f"runs it healthy; rollback goes to {self.fallback}")


def _step(name: str) -> None:
    log.debug("install step: %s", name)
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)



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


VERSION = re.compile(r"v?(\d+(?:\.\d+)*)")


def version_key(version: str) -> tuple[int, ...] | None:
    """The numbers a version starts with ("2.2.0-test" -> (2, 2, 0)), None when it starts with none.
    A suffix does not order: "2.2.0-rc1" and "2.2.0" are the same release here, neither older."""
    m = VERSION.match(version.strip())
    if m is None:
        return None
    numbers = [int(n) for n in m.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()  # 2.1 == 2.1.0
    return tuple(numbers)


def running_model(cfg: KioskConfig, store: ModelStore) -> tuple[str, str] | None:
    """(name, version) of the model the kiosk runs now: the installed current one, else model.path;
    None when its metadata cannot be read (then there is nothing to compare with)."""
    folder = store.current()
    xml = store.model_xml(folder) if folder is not None else cfg.model.path
    try:
        info = model_info(read_model(ov.Core(), xml), str(xml))
    except (ModelError, OSError, RuntimeError) as e:
        log.warning("the running model's version is unknown (%s): a bundle's version is not compared with it", e)
        return None
    return info.name, info.version


def refuse_downgrade(name: str, version: str, running: tuple[str, str] | None) -> None:
    """RolloutError when `version` is older than the running model's, or the two cannot be ordered.
    Compared whatever the models' names: an old signed bundle replayed (by hand, or by a retained
    announcement) must not go back a version; moving to another model numbered lower is meant
    and said so with --allow-downgrade (or "allow_downgrade" in the announcement)."""
    if running is None:
        return
    run_name, run_version = running
    new, now = version_key(version), version_key(run_version)
    if new is None or now is None:
        raise RolloutError(f"cannot tell whether {name} {version} is older than the running {run_name} {run_version} "
                           "(a version must start with numbers): install it with --allow-downgrade if it is meant")
    if new < now:
        raise RolloutError(f"{name} {version} is older than the running {run_name} {run_version}: "
                           "install it with --allow-downgrade if going back is meant")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@contextmanager
def as_the_kiosk_user(cfg: KioskConfig) -> Iterator[None]:
    """What an install or a rollback writes belongs to whoever owns the state folder (the
    kiosk's user, mpox-kiosk under systemd): run by root, the models folder is handed over to
    it afterwards; run by a third user, the change is refused before anything is written. Files
    the service cannot read or replace would otherwise fail every start."""
    try:
        owner = cfg.state_dir.stat()
    except FileNotFoundError:  # a first install creates it, as this user
        yield
        return
    me = os.geteuid()
    if me == owner.st_uid:
        yield
        return
    if me != 0:
        name = _user_name(owner.st_uid)
        raise RolloutError(f"the state folder {cfg.state_dir} belongs to {name}, not to {_user_name(me)}: run this as the "
                           f"kiosk's user (sudo -u {name} mpox models ...)")
    try:
        yield
    finally:
        hand_over(ModelStore.of(cfg).root, owner.st_uid, owner.st_gid)


def hand_over(root: Path, uid: int, gid: int) -> None:
    """root and everything under it (links themselves, not their targets) owned by uid:gid."""
    for path in [root, *root.rglob("*")] if root.is_dir() else []:
        try:
            os.lchown(path, uid, gid)
        except FileNotFoundError:  # cleaned away meanwhile
            pass


def check_probe_set(engine: Engine, folder: Path, probe: ProbeSet) -> Agreement:
    """The model's answers on the bundle's probe pictures (unpacked in `folder`), each run as the
    kiosk runs a photo; RolloutError when fewer are right than the bundle requires."""
    got = agreement(engine, ((read_image(folder / p.file), p.label) for p in probe.pictures))
    if got.right < probe.required_right:
        raise RolloutError(f"{engine.info.name} {engine.info.version} fails its probe pictures: expected at least "
                           f"{probe.required_right} of {got.total} right, got {got.right} (wrong: {got.wrong()}); "
                           "nothing changed, the running model stays")
    return got


UNPROBED = ("bundle carries no probe pictures (made before bundles had them): nothing shows its model means what it says; "
            "ask the authority for a bundle made by `mpox models bundle` now, or install it with --allow-unprobed")


def install_bundle(source: Path | str, cfg: KioskConfig, sha256: str | None = None, version: str | None = None,
                   force: bool = False, allow_downgrade: bool = False, allow_unprobed: bool = False) -> InstallResult:
    """Verify, check and install a bundle (a path or an http(s) URL of the authority's server);
    the running kiosk switches to it when idle. `sha256` (of the bundle file) and `version` (of
    the model), when given, as a fleet announcement carries them, must match. `force`
    installs a bundle this kiosk rolled back before; `allow_downgrade` one older than the
    model running; `allow_unprobed` one without a probe set (see above). Raises RolloutError
    (one line) and changes nothing when the bundle is refused."""

    with as_the_kiosk_user(cfg):
        return _install(source, cfg, sha256, version, force, allow_downgrade, allow_unprobed)


def _install(source: Path | str, cfg: KioskConfig, sha256: str | None, version: str | None, force: bool,
             allow_downgrade: bool, allow_unprobed: bool) -> InstallResult:
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
            if verified.probe is None and not allow_unprobed:
                raise RolloutError(UNPROBED)
            if not allow_downgrade:  # before the probe: a replayed old bundle costs no compile
                facts = model_info(read_model(ov.Core(), verified.xml), str(verified.xml))
                refuse_downgrade(facts.name, facts.version, running_model(cfg, store))
            engine = probe_model(cfg.model.model_copy(update={"path": verified.xml, "checksums": staging / "SHA256SUMS",
                                                             "verify_checksum": True}))
            info = engine.info
            if version is not None and info.version != version:
                raise RolloutError(f"bundle holds {info.name} {info.version}, not the announced version {version}")
            if verified.probe is None:
                probed = "no probe set: installed with --allow-unprobed"
                log.warning("installing %s %s without a probe set (--allow-unprobed)", info.name, info.version)
            else:
                got = check_probe_set(engine, staging, verified.probe)
                probed = f"{got.right} of {got.total} probe pictures right, at least {verified.probe.required_right} required"
            del engine
            _step("checked")
            final = store.root / _folder_name(info.version, verified.sums_sha256)
            current = store.current()
            if final == current:
                return InstallResult(InstallOutcome.ALREADY_CURRENT, info.name, info.version, final, _fallback(store), probed)
            if (final / REJECTED).exists() and not force:
                why = (final / REJECTED).read_text().strip()
                raise RolloutError(f"{info.name} {info.version} was rolled back on this kiosk ({why}): "
                                   "install it with --force to try again")
            if final.exists() and final == store.previous():
                verify_checksums(store.model_xml(final), final / "SHA256SUMS")  # the same bytes: keep the known-good copy
            else:
                if final.exists():
                    shutil.rmtree(final)  # an earlier copy that is neither current nor previous
                staging.chmod(0o755)  # mkdtemp's 0700 would hide it from a kiosk user other than the installer
                sync_dir(staging)
                os.rename(staging, final)
                sync_dir(store.root)
            _step("staged")
            if current is not None and store.confirmed(current):
                store.link(PREVIOUS, current)  # an unconfirmed current is dropped: previous stays a known-good model
                _step("previous-linked")
            store.link(CURRENT, final)
            _step("installed")
            store.clean()
            return InstallResult(InstallOutcome.INSTALLED, info.name, info.version, final, _fallback(store), probed)
        except (BundleError, ModelError, ImageError) as e:
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
    with as_the_kiosk_user(cfg):
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
