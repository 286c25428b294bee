"""A power cut (SIGKILL) at any step of an install leaves the kiosk on a whole model: the old
one until the final link is swapped, the new one after; a later install works."""

import signal

import pytest

from edge.models import engine_for_start
from edge.modelstore import ModelStore
from edge.rollout import KILL_AT_ENV, STEPS, InstallOutcome, install_bundle

from .conftest import links, mpox


def installed(cfg, bundle):
    """Install and confirm, as a kiosk that ran it healthy would."""
    result = install_bundle(bundle, cfg)
    ModelStore.of(cfg).confirm(result.folder)
    return result.folder.name


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_mid_install_keeps_the_old_model(step, kiosk, bundles):
    path, cfg = kiosk
    old = installed(cfg, bundles["v2"])
    result = mpox(["models", "install", "--config", str(path), str(bundles["v3"])], env={KILL_AT_ENV: step})
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    now = links(cfg.state_dir)
    if step == "installed":  # killed after the final rename: the new model is whole and on trial
        assert now["current"].startswith("3.0.0-test-") and now["previous"] == old
        assert engine_for_start(cfg).info.version == "3.0.0-test"
    else:
        assert now["current"] == old
        assert engine_for_start(cfg).info.version == "2.2.0-test"
    # a later install completes and cleans up what the cut-off one left
    again = install_bundle(bundles["v3"], cfg)
    assert again.outcome is (InstallOutcome.ALREADY_CURRENT if step == "installed" else InstallOutcome.INSTALLED)
    now = links(cfg.state_dir)
    assert now["current"] == again.folder.name and now["previous"] == old
    assert sorted(now["folders"].split(",")) == sorted([old, again.folder.name])
    assert [p.name for p in (cfg.state_dir / "models").iterdir() if p.name.startswith(".")] == [".lock"]
    assert engine_for_start(cfg).info.version == "3.0.0-test"


def test_sigkill_during_a_first_install_keeps_the_packaged_model(kiosk, bundles):
    path, cfg = kiosk
    result = mpox(["models", "install", "--config", str(path), str(bundles["v2"])], env={KILL_AT_ENV: "staged"})
    assert result.returncode == -signal.SIGKILL
    assert links(cfg.state_dir)["current"] is None
    assert engine_for_start(cfg).info.version == "2.1.1"  # the packaged Fast-MpoxNet
    assert install_bundle(bundles["v2"], cfg).outcome is InstallOutcome.INSTALLED
