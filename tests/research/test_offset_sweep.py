import json

import numpy as np

from research.offset_sweep import sweep

CLASSES = ["Chickenpox", "Measles", "Monkeypox", "Normal", "Other"]


def test_the_sweep_undoes_the_chosen_offset_and_marks_it(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 6)
    probs = rng.dirichlet(np.ones(5), len(labels))
    probs[np.arange(len(labels)), labels] += 1.0
    probs /= probs.sum(1, keepdims=True)
    (tmp_path / "metrics.json").write_text(json.dumps({"other_bias": -1.25}))
    np.savez(tmp_path / "validation_predictions.npz", labels=labels, probs=probs, view_probs=probs)
    paths = np.array([f"dermnet:x/{i}.jpg" if lab == 4 else f"msid/{i}.jpg" for i, lab in enumerate(labels)])
    np.savez(tmp_path / "test_predictions.npz", labels=labels, probs=probs, paths=paths)
    rows = sweep(tmp_path, CLASSES)
    assert [r["offset"] for r in rows if r["chosen"]] == [-1.25]
    assert [r["offset"] for r in rows] == sorted(r["offset"] for r in rows)
    chosen = next(r for r in rows if r["chosen"])  # undone, then moved by the chosen offset: the saved probabilities
    own = labels != 4
    assert chosen["test_msid_argmax"] == float((probs[own].argmax(1) == labels[own]).mean())
    moved_away = next(r for r in rows if r["offset"] == 0.5)  # "Other" favoured more: no fewer DermNet photos called Other
    assert moved_away["test_dermnet_called_mpox"] <= chosen["test_dermnet_called_mpox"]
    assert all(0 <= r["test_dermnet_called_mpox"] <= 1 and 0 <= r["val_balanced"] <= 1 for r in rows)
