"""The "Other" answer fitted as a fifth classifier row on a finished four-class model: the
named classes rank exactly as before, other conditions are told apart, and the model saves,
loads and exports as a five-class network."""

import json

import numpy as np
import torch

from training.export import export_checkpoint
from training.other_class import add_other_class
from training.train import TrainConfig, build, load_checkpoint, predict_logits, save_checkpoint, softmax

from .conftest import COLOURS

CLASSES = ["Chickenpox", "Measles", "Monkeypox", "Normal", "Other"]


def pictures(colour, n, rng, size=64):
    return np.clip(np.array(colour, np.float32) + rng.normal(0, 20, (n, size, size, 3)), 0, 255).astype(np.uint8)


def test_other_is_learnt_on_the_features_and_the_named_classes_rank_as_before(tmp_path, rng):
    torch.manual_seed(0)
    cfg = TrainConfig(pretrained=False)
    model = build(cfg, 4).eval()
    named = np.concatenate([pictures(COLOURS[c][::-1], 20, rng) for c in CLASSES[:4]])
    others = np.concatenate([pictures(colour, 20, rng) for colour in [(250, 200, 20), (20, 230, 230), (120, 20, 120)]])
    before = softmax(predict_logits(model, named))

    fit = add_other_class(model, 4, np.concatenate([named, others]), np.r_[np.zeros(len(named), bool), np.ones(len(others), bool)])
    assert fit["other_train_recall"] > 0.9 and fit["other_train_false"] < 0.1

    fresh_named = np.concatenate([pictures(COLOURS[c][::-1], 10, rng) for c in CLASSES[:4]])
    fresh_others = np.concatenate([pictures(colour, 10, rng) for colour in [(250, 200, 20), (20, 230, 230), (120, 20, 120)]])
    after = softmax(predict_logits(model, named))
    assert after.shape == (len(named), 5)
    assert np.allclose(after[:, :4] / after[:, :4].sum(1, keepdims=True), before, atol=1e-5)  # the four rows untouched
    assert (softmax(predict_logits(model, fresh_others)).argmax(1) == 4).mean() >= 0.9
    assert (softmax(predict_logits(model, fresh_named)).argmax(1) == 4).mean() <= 0.1

    result = {"model": model, "threshold": 0.3, "best_epoch": 1, "val_metrics": {}}
    save_checkpoint(tmp_path / "model.pt", cfg, result, CLASSES, "hash")
    loaded, facts = load_checkpoint(tmp_path / "model.pt")
    assert facts["classes"] == CLASSES
    assert np.allclose(softmax(predict_logits(loaded, fresh_others)), softmax(predict_logits(model, fresh_others)), atol=1e-6)
    xml = export_checkpoint(tmp_path / "model.pt", tmp_path / "other.xml", name="fast-mpoxnet", version="0.0.1")
    assert xml.is_file()


def test_a_cv_run_with_dermnet_trains_the_named_classes_then_fits_other(snapshot, tmp_path, image_folder):
    from dataclasses import replace

    from training import dermnet, experiment

    from .test_train_export import TINY

    root, pinned, reserved = snapshot
    dermnet.build(root, tmp_path / "cache", reserved, msid=None, pinned=pinned)
    source = dermnet.OtherSource(tmp_path / "cache", reserved, per_condition=3, per_mimic=3)
    out = tmp_path / "cv"
    experiment.run_cv(image_folder, out, replace(TINY, epochs=1, pretrained=False), folds=2, distill=False, augment=False,
                      other=source, only_folds=(0,))
    metrics = json.loads((out / "fold0" / "metrics.json").read_text())
    assert "dermnet_other" in metrics and "other_bias" in metrics and 0 <= metrics["other_train_recall"] <= 1
    val = np.load(out / "fold0" / "validation_predictions.npz")
    assert val["probs"].shape[1] == 5 and np.allclose(val["probs"].sum(1), 1, atol=1e-4)
    _, facts = load_checkpoint(out / "fold0" / "model.pt")
    assert facts["classes"] == CLASSES
