"""Function matching from an exported teacher IR: the loss, mixup, and `mpox distill` end to end
on tiny synthetic data (real OpenVINO teacher, real torch student)."""

import json

import numpy as np
import openvino as ov
import pytest
import torch
from click.testing import CliRunner

from edge.cli import main as mpox
from edge.contract import ModelInfo
from edge.engine import Engine
from edge.images import read_image
from tests.training.conftest import CLASSES, make_image_folder
from training.export import to_openvino
from training.function_matching import match_loss, mixup
from training.models import build_model
from training.models.efficientnet import NORMALISATION


def teacher_ir(path, labels=tuple(CLASSES)):
    """A (random) Fast-MpoxNet exported with metadata: a real IR to learn from."""
    torch.manual_seed(1)
    model = build_model("fast-mpoxnet", len(labels)).eval()
    info = ModelInfo(labels=tuple(labels), mean=NORMALISATION["mean"], std=NORMALISATION["std"], input_size=224,
                     name="teacher", version="0.0.1", mpox_threshold=0.3, data_hash="cd" * 32, parameters=1)
    ov.save_model(to_openvino(model, info), path)
    return path


def test_match_loss_is_zero_only_when_the_student_predicts_what_the_teacher_does():
    t = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.0, 3.0, -2.0, 1.0]])
    assert float(match_loss(t.clone(), t, 1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(match_loss(t + 5.0, t, 1.0)) == pytest.approx(0.0, abs=1e-6)  # a shift changes no probability
    assert float(match_loss(t.flip(1), t, 1.0)) > 0.5


def test_mixup_blends_each_picture_with_one_other_of_the_batch():
    x = torch.stack([torch.full((3, 4, 4), float(v)) for v in (0, 10, 20, 30)])
    mixed = mixup(x, 1.0, torch.Generator().manual_seed(0))
    for m in mixed:
        values = m.unique()
        assert len(values) == 1 and 0 <= float(values[0]) <= 30  # a whole-picture blend, inside the batch's range
    assert not torch.equal(mixed, x)
    assert torch.equal(mixup(x, 0.0, torch.Generator()), x)


def test_distill_trains_an_exportable_student_and_refuses_a_mismatched_teacher(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=8, size=48)
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(mpox, ["distill", "--data", str(data), "--teacher", str(teacher_ir(tmp_path / "t.xml")),
                                  "--out", str(out), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == "function matching" and metrics["validation"]["n"] > 0 and 0 < metrics["threshold"] <= 0.5
    assert (out / "curves.png").stat().st_size > 0
    exported = runner.invoke(mpox, ["export", "--checkpoint", str(out / "model.pt"), "--out", str(tmp_path / "s.xml"), "--no-onnx"])
    assert exported.exit_code == 0, exported.output
    probs = Engine(tmp_path / "s.xml").classify_frame(read_image(next((data / "Measles").iterdir())))
    assert probs.shape == (4,) and np.isclose(probs.sum(), 1, atol=1e-5)

    odd = teacher_ir(tmp_path / "odd.xml", labels=("A", "B", "C", "D"))
    bad = runner.invoke(mpox, ["distill", "--data", str(data), "--teacher", str(odd), "--out", str(tmp_path / "r2"), "--epochs", "1"])
    assert bad.exit_code == 1 and "the teacher teacher predicts A, B, C, D" in bad.output and "Traceback" not in bad.output


def test_cross_validated_matching_uses_each_folds_own_teacher_and_resumes(tmp_path, monkeypatch):
    from dataclasses import replace

    from training import experiment

    monkeypatch.setattr(experiment, "TEACHER_CONFIG", replace(experiment.TEACHER_CONFIG, epochs=1))
    monkeypatch.setattr(experiment, "TEACHER_VIEWS", 1)
    data = make_image_folder(tmp_path / "data", per_class=6, size=40)
    runner = CliRunner()
    args = ["distill", "--data", str(data), "--out", str(tmp_path / "runs" / "fm"), "--cv", "2", "--fold", "1", "--epochs", "1"]
    result = runner.invoke(mpox, args)
    assert result.exit_code == 0, result.output
    fold = tmp_path / "runs" / "fm" / "fold1"
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["fold"] == 1 and metrics["n"] > 0 and not (tmp_path / "runs" / "fm" / "fold0").exists()
    assert (tmp_path / "runs" / "cache" / "seed0-folds2" / "fold1" / "aug" / "teacher.pt").is_file()  # shared with `mpox train --cv`
    before = (fold / "metrics.json").stat().st_mtime_ns
    assert runner.invoke(mpox, args).exit_code == 0 and (fold / "metrics.json").stat().st_mtime_ns == before  # resumed, not redone
