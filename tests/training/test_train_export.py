"""Training on tiny synthetic data, checkpoints, export to OpenVINO/ONNX, and `mpox classify`."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import openvino as ov
import pytest
import torch
from click.testing import CliRunner

from edge.cli import main as mpox
from edge.engine import Engine, model_info
from edge.errors import ModelError
from training import experiment
from training.export import export_checkpoint, parity
from training.train import TrainConfig, load_checkpoint, to_input

TINY = TrainConfig(epochs=2, batch_size=8, lr=3e-3, patience=5, warmup_epochs=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Fast-MpoxNet trained for two epochs on 32 synthetic images, exported."""
    from .conftest import make_image_folder

    root = tmp_path_factory.mktemp("run")
    data = make_image_folder(root / "data", per_class=8, size=48)
    ckpt = experiment.run_final(data, root / "final", TINY, distill=False, augment=True, n_views=2)
    xml = export_checkpoint(ckpt, root / "models" / "tiny.xml", name="fast-mpoxnet", version="0.0.1")
    return {"root": root, "data": data, "ckpt": ckpt, "xml": xml}


def test_final_run_writes_checkpoint_metrics_and_plots(trained):
    out = trained["ckpt"].parent
    for name in ("model.pt", "metrics.json", "history.json", "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["threshold"] <= 0.5
    model, ckpt = load_checkpoint(trained["ckpt"])
    assert ckpt["classes"] == ["Chickenpox", "Measles", "Monkeypox", "Normal"]
    assert len(ckpt["data_hash"]) == 64


def test_openvino_matches_torch_and_carries_metadata(trained):
    model, ckpt = load_checkpoint(trained["ckpt"])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    assert parity(model, trained["xml"], to_input(images).contiguous().numpy()) < 1e-4
    ov_model = ov.Core().read_model(trained["xml"])
    assert [o.get_any_name() for o in ov_model.outputs] == ["logits", "cam"]  # auxiliary heads gone, the cam added
    assert list(ov_model.outputs[0].shape) == [1, 4] and list(ov_model.outputs[1].shape) == [1, 4, 14, 14]
    assert list(ov_model.inputs[0].shape) == [1, 3, 224, 224]
    info = model_info(ov_model, "tiny")
    assert info.labels == tuple(ckpt["classes"]) and info.version == "0.0.1" and info.name == "fast-mpoxnet"
    assert info.mpox_threshold == pytest.approx(ckpt["threshold"], abs=1e-6)
    assert info.data_hash == ckpt["data_hash"] and 250_000 <= info.parameters <= 290_000
    onnx_model = onnx.load(str(trained["xml"].with_suffix(".onnx")))
    assert {p.key: p.value for p in onnx_model.metadata_props}["labels"] == ",".join(ckpt["classes"])
    assert [o.name for o in onnx_model.graph.output] == ["logits", "cam"]


def test_export_can_pool_the_threshold_with_the_cv_folds_of_the_same_recipe(trained, tmp_path):
    from training.errors import TrainingError

    own = load_checkpoint(trained["ckpt"])[1]["threshold"]
    cv = tmp_path / "cv"
    for k, t in enumerate((0.2, 0.3)):
        experiment.write_json(cv / f"fold{k}" / "metrics.json", {"mpox_threshold": t})
    experiment.write_json(cv / "config.json", {"config": {"model": "fast-mpoxnet", "body": "efficientnet-lite0"}})
    xml = export_checkpoint(trained["ckpt"], tmp_path / "pooled.xml", onnx=False, threshold_from_cv=cv)
    info = Engine(xml).info
    assert info.mpox_threshold == pytest.approx(float(np.median([own, 0.2, 0.3])), abs=1e-6)
    assert info.extra["threshold_rule"].startswith("median of 3 validation-chosen thresholds")
    experiment.write_json(cv / "config.json", {"config": {"model": "fast-mpoxnet", "body": "shufflenet"}})
    with pytest.raises(TrainingError, match="another model"):
        export_checkpoint(trained["ckpt"], tmp_path / "other.xml", onnx=False, threshold_from_cv=cv)


def test_classify_prints_jsonl_and_table(trained):
    files = sorted((trained["data"] / "Monkeypox").glob("*.png"))[:2]
    result = CliRunner().invoke(mpox, ["classify", *map(str, files), "--model", str(trained["xml"]), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["path"] for r in rows] == list(map(str, files))
    for r in rows:
        assert r["label"] in r["probabilities"] and sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    table = CliRunner().invoke(mpox, ["classify", str(trained["data"] / "Normal"), "--model", str(trained["xml"])])
    assert table.exit_code == 0 and len(table.output.splitlines()) == 1 + 8


def test_classify_reports_a_corrupt_image_and_keeps_going(trained, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG truncated")
    good = next((trained["data"] / "Normal").glob("*.png"))
    result = CliRunner().invoke(mpox, ["classify", str(bad), str(good), "--model", str(trained["xml"]), "--format", "jsonl"])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert "not a readable image" in lines[0]["error"] and lines[1]["path"] == str(good)
    assert "1 of 2 images could not be read" in result.output


def test_classify_does_not_import_torch(trained):
    good = next((trained["data"] / "Normal").glob("*.png"))
    code = (
        "import sys; from edge.cli import main\n"
        f"try: main(['classify', {str(good)!r}, '--model', {str(trained['xml'])!r}])\n"
        "except SystemExit as e: assert e.code in (0, None), e.code\n"
        "assert 'torch' not in sys.modules and 'nncf' not in sys.modules, 'edge imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wrong_or_corrupt_models_are_refused(trained, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Engine(tmp_path / "missing.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text("<net>not a model")
    broken.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ModelError, match="cannot read"):
        Engine(broken)
    bare = ov.convert_model(torch.nn.Conv2d(3, 4, 224).eval(), example_input=torch.zeros(1, 3, 224, 224), input=[1, 3, 224, 224])
    ov.save_model(bare, tmp_path / "bare.xml")
    with pytest.raises(ModelError, match="no 'mpox' metadata"):
        Engine(tmp_path / "bare.xml")
    result = CliRunner().invoke(mpox, ["classify", str(trained["data"]), "--model", str(tmp_path / "missing.xml")])
    assert result.exit_code == 1 and "model file not found" in result.output and "Traceback" not in result.output


def test_cli_user_errors_are_one_line(tmp_path, trained):
    runner = CliRunner()
    r = runner.invoke(mpox, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert r.exit_code != 0 and "data folder not found" in r.output and "Traceback" not in r.output
    r = runner.invoke(mpox, ["train", "--data", str(trained["data"]), "--model", "resnet", "--out", str(tmp_path / "run")])
    assert r.exit_code != 0 and "resnet" in r.output
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    r = runner.invoke(mpox, ["export", "--checkpoint", str(junk), "--out", str(tmp_path / "x.xml")])
    assert r.exit_code == 1 and "cannot read checkpoint" in r.output and "Traceback" not in r.output


def test_cross_validation_is_resumable(trained, tmp_path):
    cfg = replace(TINY, epochs=1)
    out = tmp_path / "cv"
    first = experiment.run_cv(trained["data"], out, cfg, folds=2, distill=False, augment=False)
    assert first["folds"] == 2 and 0 <= first["summary"]["accuracy"]["mean"] <= 1
    assert "Monkeypox.recall" in first["summary"] and (out / "confusion.png").is_file() and (out / "roc_pr.png").is_file()
    marker = json.loads((out / "fold0" / "metrics.json").read_text())
    val = np.load(out / "fold0" / "validation_predictions.npz")  # for decision rules chosen after training
    assert val["view_probs"].shape == val["probs"].shape == (len(val["labels"]), 4)
    assert np.allclose(val["view_probs"].sum(1), 1, atol=1e-4)
    second = experiment.run_cv(trained["data"], out, cfg, folds=2, distill=False, augment=False)
    assert second["per_fold"][0] == marker  # finished folds are read back, not retrained
    only = experiment.run_cv(trained["data"], out, cfg, folds=2, distill=False, augment=False, only_folds=(1,))
    assert [f["fold"] for f in only["per_fold"]] == [1]
    assert json.loads((out / "summary.json").read_text())["folds"] == 2  # the file still covers every finished fold


def test_ablation_table_and_statistics_from_runs_on_the_same_folds(trained, tmp_path):
    from training import report

    cfg = replace(TINY, epochs=1)
    scratch = report.ABLATION[0]
    assert not report.variant_config(cfg, scratch).pretrained and report.variant_config(cfg, report.ABLATION[1]).pretrained
    experiment.run_cv(trained["data"], report.variant_dir(tmp_path, scratch), report.variant_config(cfg, scratch), 2,
                      scratch.distill, scratch.augment, runs_root=tmp_path)
    experiment.run_cv(trained["data"], tmp_path / "fast-mpoxnet", cfg, 2, distill=False, augment=True, n_views=2, runs_root=tmp_path)
    table = report.ablation_table(tmp_path, tmp_path / "cache" / "seed0-folds2").splitlines()
    assert table[0].startswith("| model | folds | accuracy (at threshold) | accuracy (argmax)")
    assert [line.split("|")[1].strip() for line in table[2:]] == ["scratch", "+ auxiliary losses (Fast-MpoxNet)"]
    stats = report.statistics(tmp_path)
    assert 0 <= stats["fast-mpoxnet fold homogeneity"]["p_value"] <= 1
    thresholds = stats["fast-mpoxnet thresholds"]
    assert set(thresholds) == {"own", "median of the other folds"}
    assert all(0 <= v <= 1 for rule in thresholds.values() for v in rule.values())
    assert 0 <= stats["fast-mpoxnet vs scratch"]["mcnemar_p_value"] <= 1
    r = CliRunner().invoke(mpox, ["report", "--runs", str(tmp_path), "--folds", "2"])
    assert r.exit_code == 0, r.output
    tables, statistics = r.output.split("## Statistics")
    assert tables.count("| scratch | 2 |") == 1 and "## EfficientNet versions" in tables
    assert json.loads(statistics) == json.loads(json.dumps(stats))  # the command prints what report.statistics finds
    r = CliRunner().invoke(mpox, ["report", "--runs", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "no Fast-MpoxNet CV run" in r.output and "Traceback" not in r.output


def test_evaluate_prints_metrics_and_refuses_other_labels(trained, tmp_path):
    from .conftest import make_image_folder

    r = CliRunner().invoke(mpox, ["evaluate", "--checkpoint", str(trained["ckpt"]), "--data", str(trained["data"])])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["n"] == 32 and 0 <= metrics["accuracy"] <= 1 and set(metrics["per_class"]) == {"Chickenpox", "Measles", "Monkeypox", "Normal"}
    other = make_image_folder(tmp_path / "other", per_class=2, classes=["Measles", "Normal"])
    r = CliRunner().invoke(mpox, ["evaluate", "--checkpoint", str(trained["ckpt"]), "--data", str(other)])
    assert r.exit_code == 1 and "differ from the model's" in r.output
