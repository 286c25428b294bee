"""Helpers of the rollout tests: an authority's key pair, test models re-saved from the shipped
int8 IR with another version in their rt_info (bundled with the demo pictures as their probe
set, as `mpox models bundle` does), and a fast demo kiosk that trusts the key."""

import os
import subprocess
import sys
from pathlib import Path

import openvino as ov
import pytest

from authority.signing import demo_pictures, generate_keys, load_private_key, measure_probe_set, write_bundle
from edge.config import ModelConfig, load_config
from edge.models import probe_model
from tests import last_wins

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "fast-mpoxnet-int8.xml"


def make_model(folder: Path, version: str, **rt_info: str) -> Path:
    """The shipped int8 Fast-MpoxNet saved again with `version` (and any other rt_info
    values) in its metadata, as `mpox export` or `mpox quantize` would write a new model."""
    folder.mkdir(parents=True, exist_ok=True)
    model = ov.Core().read_model(SHIPPED)
    for key, value in {"version": version, **rt_info}.items():
        model.set_rt_info(value, ["mpox", key])
    xml = folder / "fast-mpoxnet.xml"
    ov.save_model(model, xml, compress_to_fp16=False)
    return xml


class Authority:
    """The health authority's side: a key pair and bundles signed with it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.private, self.public = folder / "signing.pem", folder / "signing.pub.pem"
        generate_keys(self.private, self.public)

    def bundle(self, xml: Path, name: str, probed: bool = True, measured_on: Path | None = None) -> Path:
        """A signed bundle of xml with the demo pictures as its probe set, measured on the model
        itself (as `mpox models bundle` does) or on `measured_on` (a bundle whose expectation is
        another model's: what a kiosk whose runtime changes the model sees); probed=False: a
        bundle as made before probe sets."""
        out = self.folder / name
        probe = None
        if probed:
            probe = measure_probe_set(probe_model(ModelConfig(path=measured_on or xml, verify_checksum=False)), demo_pictures())
        write_bundle(xml, load_private_key(self.private), out, probe)
        return out


@pytest.fixture(scope="session")
def authority(tmp_path_factory):
    return Authority(tmp_path_factory.mktemp("authority"))


@pytest.fixture(scope="session")
def bundles(authority, tmp_path_factory):
    """Signed bundles of two new versions, and the models behind them."""
    models = tmp_path_factory.mktemp("models")
    v2, v3 = make_model(models / "v2", "2.2.0-test"), make_model(models / "v3", "3.0.0-test")
    return {"v2": authority.bundle(v2, "v2.tar"), "v3": authority.bundle(v3, "v3.tar"), "v2.xml": v2, "v3.xml": v3}


def kiosk_yaml(tmp_path: Path, public_key: Path, extra: str = "", source: str = "  kind: demo\n  fps: 75\n") -> Path:
    p = tmp_path / "kiosk.yaml"
    p.write_text(last_wins(f"kiosk_id: test-1\nstate_dir: state\nsource:\n{source}decision:\n  frames: 5\n  best_frames: 4\n"
                           f"  result_hold_s: 0.5\n  leave_after_s: 0.2\npresence:\n  learn_s: 0.2\nweb:\n  enabled: false\n"
                           f"rollout:\n  public_key: {public_key}\n  trial_frames: 20\n{extra}"))
    return p


@pytest.fixture
def kiosk(tmp_path, authority):
    """(config file, config) of a demo kiosk that trusts the authority."""
    path = kiosk_yaml(tmp_path, authority.public)
    return path, load_config(path)


def cli(args: list[str]):
    """`mpox ...` in this process (quicker than a process; output and exit status the same)."""
    from click.testing import CliRunner

    from edge.cli import main

    return CliRunner().invoke(main, args)


def mpox(args: list[str], timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """`mpox ...` as a real process, as a technician or the service would run it."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], env=process_env(env), text=True, capture_output=True,
                          timeout=timeout, cwd=ROOT)


def process_env(extra: dict | None = None) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **(extra or {})}


def links(state: Path) -> dict[str, str | None]:
    """Where current and previous point (None: absent), and the model folders present."""
    root = state / "models"
    found: dict[str, str | None] = {k: (os.readlink(root / k) if (root / k).is_symlink() else None) for k in ("current", "previous")}
    found["folders"] = ",".join(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())) if root.is_dir() else ""
    return found
