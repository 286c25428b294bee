"""edge/models.py: the model is chosen, loaded and probed in one place, and the mpox threshold
resolved there is the one the judgement, the label, the heatmap and the audit row all use."""

import sqlite3
from pathlib import Path

import numpy as np

from edge.config import KioskConfig, ModelConfig
from edge.contract import MPOX_LABEL
from edge.heatmap import class_heatmap
from edge.kiosk import Kiosk
from edge.models import active_model, compile_settings, load_engine, probe_model

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_with_no_bundle_installed_the_kiosk_runs_model_path_at_the_models_own_threshold(tmp_path):
    cfg = KioskConfig(state_dir=tmp_path)
    assert active_model(cfg) == cfg.model
    engine = load_engine(cfg)
    assert engine.mpox_threshold == engine.info.mpox_threshold
    assert probe_model(cfg.model).info == engine.info


def test_inference_runs_on_one_thread_unless_the_config_says_otherwise(tmp_path):
    """A frame is classified at a time: a second inference thread costs more CPU than the latency
    it saves (benchmarks/bench_threads.py). threads 0 sets none: OpenVINO's choice."""
    assert load_engine(KioskConfig(state_dir=tmp_path)).compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert "INFERENCE_NUM_THREADS" not in compile_settings(ModelConfig(threads=0))

def test_a_config_threshold_is_the_one_the_label_and_the_heatmap_use(tmp_path):
    """Probabilities just under the model's threshold but over the override: the judgement says
    mpox, and so must the engine's label and its heatmap (the mpox class's map, not another's)."""
    own = load_engine(KioskConfig(state_dir=tmp_path / "a"))
    labels, t = own.info.labels, own.info.mpox_threshold
    m = labels.index(MPOX_LABEL)
    probs = np.full(len(labels), (1 - t * 0.9) / (len(labels) - 1))
    probs[m] = t * 0.9
    assert own.label(probs) != MPOX_LABEL
    cfg = KioskConfig(state_dir=tmp_path / "b", model=ModelConfig(mpox_threshold=t * 0.8))
    kiosk = Kiosk(cfg)
    assert kiosk.model.mpox_threshold == kiosk.engine.mpox_threshold == t * 0.8
    assert kiosk.engine.label(probs) == MPOX_LABEL
    image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), np.uint8)
    explained, heat = kiosk.engine.explain_frame(image)
    chosen = kiosk.engine.label(explained)
    if heat is not None:  # the shipped Fast-MpoxNet has its class-activation output
        results = kiosk.engine._explainer[1].results if kiosk.engine._explainer else None
        assert results is not None
        cam = np.array(results[kiosk.engine._explainer[0].output("cam")], np.float32)[0]
        assert np.array_equal(heat, class_heatmap(cam, labels.index(chosen), heat.shape))
    kiosk.store.close()


def test_the_audit_row_records_the_threshold_the_outcome_was_decided_at(tmp_path):
    cfg = KioskConfig(state_dir=tmp_path, model=ModelConfig(mpox_threshold=0.2))
    kiosk = Kiosk(cfg)
    checked = kiosk.check_photo(np.full((240, 320, 3), 120, np.uint8))
    kiosk.run(max_frames=5)
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    assert db.execute("SELECT mpox_threshold, origin FROM screenings WHERE id = ?", (checked.screening.id,)).fetchone() == \
        (0.2, "upload")
