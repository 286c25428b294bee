"""`mpox quantize` and the fold-wise int8 evaluation on tiny synthetic data: real NNCF, real OpenVINO."""

import json

import numpy as np
import openvino as ov
import pytest
import torch
from click.testing import CliRunner

from edge.cli import main as mpox
from edge.contract import ModelInfo
from edge.engine import Engine, model_info
from edge.errors import ModelError
from edge.images import read_image
from quantization.crossval import int8_cv
from quantization.quantize import Settings, has_fp16_weights, quantize_ir, upcast_fp16_weights
from tests.training.conftest import CLASSES, make_image_folder
from training import experiment
from training.data import load_image_folder
from training.errors import DataError
from training.export import to_openvino
from training.models import build_model
from training.train import TrainConfig

SMALL = Settings(subset_size=16)


def float_ir(path, labels=tuple(CLASSES), fp16=False, metadata=True):
    torch.manual_seed(0)
    model = build_model("fast-mpoxnet", len(labels)).eval()
    info = ModelInfo(labels=tuple(labels), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=224, name="fast-mpoxnet",
                     version="0.0.1", mpox_threshold=0.2, data_hash="ab" * 32, parameters=266431, extra={"best_epoch": "3"})
    ov_model = to_openvino(model, info)
    if not metadata:
        ov_model = ov.convert_model(model, example_input=torch.zeros(1, 3, 224, 224), input=[1, 3, 224, 224])
    ov.save_model(ov_model, path, compress_to_fp16=fp16)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("q") / "data", per_class=8, size=48)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("int8")
    xml = float_ir(root / "fp32.xml")
    report = quantize_ir(xml, data, root / "int8.xml", SMALL)
    return {"fp32": xml, "int8": root / "int8.xml", "report": report}


def test_int8_model_has_int8_weights_and_runs_in_the_engine(quantized, data):
    int8 = ov.Core().read_model(quantized["int8"])
    assert any(op.get_type_name() == "FakeQuantize" for op in int8.get_ops())
    assert quantized["int8"].with_suffix(".bin").stat().st_size < 0.4 * quantized["fp32"].with_suffix(".bin").stat().st_size
    engine = Engine(quantized["int8"])
    probs = engine.classify_frame(read_image(next((data / "Monkeypox").iterdir())))
    assert probs.shape == (4,) and probs.sum() == pytest.approx(1, abs=1e-5)
    assert [o.get_any_name() for o in int8.outputs] == ["logits", "cam"] and engine.explains  # int8 keeps the heatmap


def test_int8_keeps_every_float_field_and_adds_its_own(quantized):
    fp32 = model_info(ov.Core().read_model(quantized["fp32"]), "fp32")
    int8 = model_info(ov.Core().read_model(quantized["int8"]), "int8")
    for field in ("labels", "mean", "std", "input_size", "name", "version", "mpox_threshold", "data_hash", "parameters"):
        assert getattr(int8, field) == getattr(fp32, field), field
    assert int8.extra["best_epoch"] == "3" and int8.extra["precision"] == "int8"
    assert int8.extra["calibration_size"] == "16" and int8.extra["quantization_preset"] == "performance"
    assert "quantize_with_accuracy_control" in int8.extra["quantization"]
    report = quantized["report"]
    for precision in ("fp32", "int8"):
        assert float(int8.extra[f"{precision}_validation_mpox_sensitivity"]) == pytest.approx(report[precision]["mpox_sensitivity"], abs=1e-4)
    assert 0 <= report["int8"]["accuracy"] <= 1 and report["int8"]["n"] > 0


def test_data_with_other_labels_is_refused_naming_both(tmp_path):
    xml = float_ir(tmp_path / "fp32.xml")
    other = make_image_folder(tmp_path / "other", per_class=4, classes=["Chickenpox", "Measles", "Monkeypox"])
    with pytest.raises(DataError, match="Chickenpox, Measles, Monkeypox but the model .* Normal"):
        quantize_ir(xml, other, tmp_path / "int8.xml", SMALL)


def test_model_without_metadata_is_refused(tmp_path, data):
    with pytest.raises(ModelError, match="no 'mpox' metadata"):
        quantize_ir(float_ir(tmp_path / "bare.xml", metadata=False), data, tmp_path / "a.xml", SMALL)
    assert not (tmp_path / "a.xml").exists()


def test_fp16_weights_are_upcast_keeping_what_the_model_computes(tmp_path):
    half = ov.Core().read_model(float_ir(tmp_path / "half.xml", fp16=True))
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    before = ov.Core().compile_model(half, "CPU", f32)(x)[0]
    assert has_fp16_weights(half)
    assert upcast_fp16_weights(half) > 10 and not has_fp16_weights(half)
    after = ov.Core().compile_model(half, "CPU", f32)(x)[0]
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_cli_reports_bad_input_in_one_line(tmp_path, data):
    runner = CliRunner()
    result = runner.invoke(mpox, ["quantize", "--model", str(tmp_path / "missing.xml"), "--data", str(data), "--out", str(tmp_path / "o.xml")])
    assert result.exit_code == 1 and "model file not found" in result.output and "Traceback" not in result.output
    result = runner.invoke(mpox, ["quantize", "--model", "m.xml", "--data", str(tmp_path / "nowhere"), "--out", "o.xml"])
    assert result.exit_code == 1 and "data folder not found" in result.output


def test_fold_wise_int8_evaluation_on_cv_checkpoints(tmp_path, data):
    cfg = TrainConfig(epochs=1, batch_size=8, patience=5, warmup_epochs=0, pre_distill_epochs=0)
    experiment.run_cv(data, tmp_path / "cv", cfg, folds=2, distill=False, augment=False)
    out = tmp_path / "int8-cv.json"
    result = int8_cv(data, str(tmp_path / "cv" / "fold{fold}" / "model.pt"), out, 2, SMALL)
    assert json.loads(out.read_text())["summary"]["folds"] == 2
    ds = load_image_folder(data)
    for row in result["per_fold"]:
        assert 0 <= row["top1_agreement"] <= 1
        assert row["fp32"]["n"] == row["int8"]["n"] and row["int8"]["n"] < len(ds)
    assert sum(r["int8"]["n"] for r in result["per_fold"]) == len(ds)  # every image tested once
    assert np.isfinite(result["summary"]["accuracy_drop_pp"])


def test_accuracy_control_keeps_int8_deciding_as_float_on_its_control_inputs(quantized, data, tmp_path):
    """Accuracy control starts from plain int8 and reverts layers to float while int8's decisions
    on the control inputs differ from float's: it never agrees less than plain int8."""
    from dataclasses import replace

    from edge.contract import decide
    from quantization.quantize import control_inputs, predict, read_ir, training_data
    from training.data import validation_split

    model, info = read_ir(quantized["fp32"])
    ds, groups = training_data(data, info)
    tr, va = validation_split(ds.labels, groups, experiment.VAL_FRACTION, SMALL.seed)
    control = control_inputs(ds.images[va], ds.images[tr], info, SMALL)
    assert len(control) == len(va) + len(tr)  # the validation photos and one kiosk view of each training photo
    quantize_ir(quantized["fp32"], data, tmp_path / "plain.xml", replace(SMALL, accuracy_control=False))
    core = ov.Core()

    def decisions(xml):
        return decide(predict(core.compile_model(core.read_model(xml), "CPU"), control), info.labels, info.mpox_threshold)

    theirs = decisions(quantized["fp32"])
    assert (decisions(quantized["int8"]) == theirs).mean() >= (decisions(tmp_path / "plain.xml") == theirs).mean()
