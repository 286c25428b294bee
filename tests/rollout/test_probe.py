"""A bundle's probe set (edge/probeset.py): a model that answers nonsense on the bundle's
labelled pictures (random weights, swapped labels) is refused at install, by hand and through
an announcement, with one line, and nothing changes; the pictures are signed with the model;
`mpox models bundle` measures them and refuses a model that is already nonsense."""

import json
import re
import sqlite3
import tarfile
import time

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from authority.signing import Measured, demo_pictures, image_folder, load_private_key, measure_probe_set, write_bundle
from edge.announce import Announcement, ModelFollower
from edge.bundle import sha256_of
from edge.config import ModelConfig
from edge.engine import model_info, read_model
from edge.events import ModelFacts
from edge.kiosk import Kiosk
from edge.models import probe_model
from edge.probeset import ProbeSet
from edge.rollout import install_bundle
from edge.store import AuditLog, ModelStamp

from .conftest import SHIPPED, cli, links, make_model, mpox
from .test_install import Server, flip_byte, refused, rewrite

PACKAGED = "2.1.1"  # the shipped Fast-MpoxNet: what the test kiosk runs with nothing installed
SWAPPED = "Monkeypox,Measles,Chickenpox,Normal"  # the shipped order is Chickenpox,Measles,Monkeypox,Normal


def random_model(folder, version: str, seed: int = 0):
    """A tiny IR with random weights (each picture's mean colour times a random matrix) and the
    shipped model's metadata: what exporting an untrained network would give. It runs, its
    probabilities are finite and sum to 1: it passes the install's probe frame."""
    rng = np.random.default_rng(seed)
    x = ops.parameter([1, 3, 224, 224], ov.Type.f32, name="input")
    pooled = ops.reduce_mean(x, np.array([2, 3], np.int64), keep_dims=False)
    logits = ops.add(ops.matmul(pooled, ops.constant(rng.normal(size=(3, 4)).astype(np.float32)), False, False),
                     ops.constant(rng.normal(size=(1, 4)).astype(np.float32)))
    logits.output(0).get_tensor().set_names({"logits"})
    model = ov.Model([logits], [x], "random")
    for key, value in {**model_info(read_model(ov.Core(), SHIPPED), str(SHIPPED)).to_rt_info(), "version": version}.items():
        model.set_rt_info(value, ["mpox", key])
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, folder / "fast-mpoxnet.xml", compress_to_fp16=False)
    return folder / "fast-mpoxnet.xml"


@pytest.fixture(scope="module")
def nonsense(authority, bundles, tmp_path_factory):
    """Signed bundles of a random-weights model and a label-swapped one, each with the probe set
    measured on the good model of their version line: what a kiosk gets when the model in a
    bundle is not the one the authority measured, or its runtime makes another of it."""
    folder = tmp_path_factory.mktemp("nonsense")
    return {"random": authority.bundle(random_model(folder / "random", "4.0.0-test"), "random.tar", measured_on=bundles["v2.xml"]),
            "swapped": authority.bundle(make_model(folder / "swapped", "4.0.0-test", labels=SWAPPED), "swapped.tar",
                                        measured_on=bundles["v2.xml"])}


def manifest(bundle) -> ProbeSet:
    with tarfile.open(bundle) as tar:
        return ProbeSet.from_json(tar.extractfile("PROBE.json").read())


def test_a_bundle_carries_the_demo_pictures_and_what_its_model_gets_right_on_them(bundles):
    probe = manifest(bundles["v2"])
    with tarfile.open(bundles["v2"]) as tar:
        names = tar.getnames()
        sums = tar.extractfile("SHA256SUMS").read().decode()
    demo = demo_pictures()
    assert [p.label for p in probe.pictures] == [label.capitalize() for _, label in demo.pictures]  # 3 Chickenpox, 3 Measles, 4 Monkeypox, 2 Normal
    assert sorted(n for n in names if n.startswith("probe-")) == sorted(p.file for p in probe.pictures)
    assert all(f"  {p.file}\n" in sums for p in probe.pictures) and "  PROBE.json\n" in sums  # signed with the model
    assert probe.required_right == probe.measured_right - 2 and probe.required_right > 4  # > what "Monkeypox" to all gets
    assert "Monkeypox Skin Images Dataset" in probe.attribution and probe.measured_with.startswith("OpenVINO ")


@pytest.mark.parametrize("kind,wrong", [("random", " as "), ("swapped", "3 Chickenpox as Monkeypox")])
def test_a_model_that_answers_nonsense_is_refused_at_install_and_nothing_changes(kind, wrong, kiosk, bundles, nonsense):
    path, cfg = kiosk
    install_bundle(bundles["v2"], cfg)
    before = links(cfg.state_dir)
    required = manifest(nonsense[kind]).required_right
    result = mpox(["models", "install", "--config", str(path), str(nonsense[kind])])
    refused(result, f"fast-mpoxnet 4.0.0-test fails its probe pictures: expected at least {required} of 12 right, got ")
    got = int(re.search(r"got (\d+) \(wrong: ", result.stderr).group(1))
    assert got < required and wrong in result.stderr and "nothing changed, the running model stays" in result.stderr
    assert links(cfg.state_dir) == before
    assert sorted(p.name for p in (cfg.state_dir / "models").iterdir() if p.name.startswith(".")) == [".lock"]
    assert Kiosk(cfg).model.version == "2.2.0-test"


def test_the_good_model_of_the_same_probe_set_is_installed(kiosk, bundles):
    path, cfg = kiosk
    result = cli(["models", "install", "--config", str(path), str(bundles["v3"])])
    assert result.exit_code == 0, result.output
    m = re.search(r"\((\d+) of 12 probe pictures right, at least (\d+) required\)", result.output)
    assert m and int(m.group(1)) >= int(m.group(2)) == manifest(bundles["v3"]).required_right, result.output
    assert links(cfg.state_dir)["current"].startswith("3.0.0-test-")


def follow(cfg, url: str, bundle, version: str) -> list[tuple[str, str]]:
    """A retained announcement of the bundle handed to the kiosk's follower; the events it wrote."""
    store = AuditLog(cfg.state_dir, cfg.store, cfg.kiosk_id, ModelStamp("fast-mpoxnet", PACKAGED, "ab" * 32), outbox=True)
    follower = ModelFollower(cfg, store.path)
    try:
        follower.offer(Announcement(url, version, sha256_of(bundle)).payload().encode(),
                       ModelFacts("fast-mpoxnet", PACKAGED, "ab" * 32, "FP32", "CPU", 0.2))
        deadline = time.monotonic() + 120
        while follower._worker is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert follower._worker is None
    finally:
        store.close()
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT kind, detail FROM events WHERE kind LIKE 'model_%'").fetchall()


def test_an_announced_model_that_answers_nonsense_is_refused_and_the_good_one_installed(kiosk, bundles, nonsense):
    path, cfg = kiosk
    server = Server(nonsense["random"].parent)
    try:
        events = follow(cfg, f"{server.url}/random.tar", nonsense["random"], "4.0.0-test")
        assert len(events) == 1 and events[0][0] == "model_refused", events
        assert "fails its probe pictures: expected at least" in events[0][1] and "got " in events[0][1]
        assert links(cfg.state_dir)["current"] is None
        server.close()
        server = Server(bundles["v2"].parent)
        events = follow(cfg, f"{server.url}/v2.tar", bundles["v2"], "2.2.0-test")
    finally:
        server.close()
    assert [kind for kind, _ in events] == ["model_refused", "model_installed"], events
    assert links(cfg.state_dir)["current"].startswith("2.2.0-test-")


def swap_pictures(name, data, bundle):
    """probe-01 (a Chickenpox picture) and probe-07 (a Monkeypox one) trade places."""
    with tarfile.open(bundle) as tar:
        other = {"probe-01.png": "probe-07.png", "probe-07.png": "probe-01.png"}.get(name)
        return [(name, tar.extractfile(other).read() if other else data, tarfile.REGTYPE)]


TAMPERED = {
    "a probe picture changed": (lambda n, d, b: [(n, flip_byte(d) if n == "probe-03.png" else d, tarfile.REGTYPE)],
                                "bundle member probe-03.png does not match its signed checksum"),
    "two probe pictures swapped": (swap_pictures, "does not match its signed checksum"),
    "the expectation lowered": (lambda n, d, b: [(n, re.sub(rb'"required_right": \d+', b'"required_right": 1', d) if n == "PROBE.json"
                                                  else d, tarfile.REGTYPE)], "bundle member PROBE.json does not match"),
    "a probe picture left out": (lambda n, d, b: [] if n == "probe-12.png" else [(n, d, tarfile.REGTYPE)],
                                 "bundle SHA256SUMS lists"),
}


@pytest.mark.parametrize("kind", TAMPERED)
def test_a_tampered_probe_set_breaks_the_signature(kind, kiosk, bundles, tmp_path):
    path, cfg = kiosk
    change, message = TAMPERED[kind]
    bad = rewrite(bundles["v2"], tmp_path / "bad.tar", lambda n, d: change(n, d, bundles["v2"]))
    refused(cli(["models", "install", "--config", str(path), str(bad)]), message)
    assert links(cfg.state_dir)["current"] is None


def test_a_probe_manifest_must_name_exactly_the_pictures_signed_with_it(kiosk, authority, bundles, tmp_path):
    path, cfg = kiosk
    measured = measure_probe_set(probe_model(ModelConfig(path=bundles["v2.xml"], verify_checksum=False)), demo_pictures())
    fewer = Measured(measured.manifest, {k: v for k, v in measured.pictures.items() if k != "probe-12.png"})
    out = tmp_path / "fewer.tar"
    write_bundle(bundles["v2.xml"], load_private_key(authority.private), out, fewer)  # signed as it is
    refused(cli(["models", "install", "--config", str(path), str(out)]), "PROBE.json names probe-01.png")
    assert links(cfg.state_dir)["current"] is None


def test_a_bundle_without_a_probe_set_is_refused_unless_allowed_and_never_from_an_announcement(kiosk, authority, bundles):
    path, cfg = kiosk
    old = authority.bundle(bundles["v2.xml"], "unprobed.tar", probed=False)
    refused(mpox(["models", "install", "--config", str(path), str(old)]), "bundle carries no probe pictures")
    server = Server(old.parent)
    try:
        events = follow(cfg, f"{server.url}/unprobed.tar", old, "2.2.0-test")
    finally:
        server.close()
    assert len(events) == 1 and events[0][0] == "model_refused" and "no probe pictures" in events[0][1]
    assert links(cfg.state_dir)["current"] is None
    result = cli(["models", "install", "--config", str(path), "--allow-unprobed", str(old)])
    assert result.exit_code == 0 and "(no probe set: installed with --allow-unprobed)" in result.output, result.output
    assert links(cfg.state_dir)["current"].startswith("2.2.0-test-")


@pytest.mark.parametrize("model", ["random", "swapped"])
def test_the_authority_cannot_bundle_a_model_that_answers_nonsense(model, authority, tmp_path):
    xml = random_model(tmp_path / "m", "5.0.0-test") if model == "random" else make_model(tmp_path / "m", "5.0.0-test",
                                                                                          labels=SWAPPED)
    result = mpox(["models", "bundle", "--key", str(authority.private), str(xml), "--out", str(tmp_path / "b.tar")])
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "fast-mpoxnet 5.0.0-test answers" in errors[0] and "could not tell it from a model answering" in errors[0]
    assert "not bundled" in errors[0]
    assert not (tmp_path / "b.tar").exists()


def test_bundle_takes_an_image_folder_whose_labels_must_be_the_models(authority, bundles, tmp_path):
    """--probe DIR: one folder per label (any case), at most --probe-per-class pictures each."""
    import shutil

    for picture, label in demo_pictures().pictures:
        (tmp_path / "probe" / label.upper()).mkdir(parents=True, exist_ok=True)
        shutil.copy(picture, tmp_path / "probe" / label.upper() / picture.name)
    assert len(image_folder(tmp_path / "probe").pictures) == 12
    result = mpox(["models", "bundle", "--key", str(authority.private), str(bundles["v2.xml"]), "--out", str(tmp_path / "b.tar"),
                   "--probe", str(tmp_path / "probe"), "--probe-per-class", "2"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"\d of 8 right; a kiosk refuses it below \d", json.loads(result.stdout)["probe"])
    assert [p.label for p in manifest(tmp_path / "b.tar").pictures] == ["Chickenpox"] * 2 + ["Measles"] * 2 + ["Monkeypox"] * 2 + \
        ["Normal"] * 2
    (tmp_path / "probe" / "Smallpox").mkdir()
    shutil.copy(demo_pictures().pictures[0][0], tmp_path / "probe" / "Smallpox" / "x.png")
    result = mpox(["models", "bundle", "--key", str(authority.private), str(bundles["v2.xml"]), "--out", str(tmp_path / "c.tar"),
                   "--probe", str(tmp_path / "probe")])
    assert result.returncode == 1 and "probe pictures labelled Smallpox: not among the model's labels" in result.stderr


def test_a_manifest_is_checked_when_read():
    good = {"format": 1, "pictures": [{"file": "probe-01.png", "label": "Normal"}], "measured_right": 1, "required_right": 1}
    assert ProbeSet.from_json(json.dumps(good).encode()).required_right == 1
    for bad, problem in [({**good, "format": 2}, "not a format 1"), ({**good, "required_right": 2}, "required_right"),
                         ({**good, "required_right": 0}, "required_right"), ({**good, "measured_right": "1"}, "whole numbers"),
                         ({**good, "pictures": [{"file": "../x.png", "label": "Normal"}]}, "probe-NN.png"),
                         ({**good, "pictures": []}, "1 to 64 pictures"), ({k: v for k, v in good.items() if k != "pictures"},
                                                                          "malformed")]:
        with pytest.raises(ValueError, match=problem):
            ProbeSet.from_json(json.dumps(bad).encode())
