"""Choosing the model: the one place that finds, verifies, loads and probes the model a kiosk
runs, and resolves the mpox threshold it decides with.

    find     active_model: an installed bundle's (edge/modelstore.py), else model.path
    verify   open_engine: SHA256SUMS and the IR's metadata (edge/engine.py)
    load     load_engine, engine_for_start (which rolls back an installed model that fails)
    probe    probe_model: one grey frame must give finite probabilities that sum to 1
    decide   resolve_threshold: model.mpox_threshold if the config sets it, else the model's own

Everything that needs a model or a threshold asks here: the kiosk loop, `mpox check`, a
bundle install, the authority's `mpox models bundle`.
"""

from __future__ import annotations

import logging
import os
import pwd
from pathlib import Path

import numpy as np

from edge.config import KioskConfig, ModelConfig
from edge.engine import Engine, openvino_reason
from edge.errors import ModelError
from edge.modelstore import ModelStore, RolloutError

log = logging.getLogger(__name__)


def active_model(cfg: KioskConfig) -> ModelConfig:
    """The model section the kiosk runs with: the installed current model if there is one
    (checked against its own SHA256SUMS), else the config's model.path."""
    store = ModelStore.of(cfg)
    folder = store.current()
    if folder is None:
        return cfg.model
    return cfg.model.model_copy(update={"path": store.model_xml(folder), "checksums": folder / "SHA256SUMS"})


def resolve_threshold(engine: Engine, m: ModelConfig) -> float:
    """The mpox threshold the kiosk decides with, set on the engine so that its label and its
    heatmap explain the class the judgement chose: the config's override, else the model's."""
    engine.mpox_threshold = m.mpox_threshold or engine.info.mpox_threshold
    return engine.mpox_threshold


def compile_settings(m: ModelConfig) -> dict:
    """OpenVINO's settings from a model section (precision, threads): the kiosk's, and those the
    session simulator runs a fold's model with, so that it classifies as the kiosk would."""
    ov_config = {}
    if m.inference_precision:
        ov_config["INFERENCE_PRECISION_HINT"] = m.inference_precision
    if m.threads:
        ov_config["INFERENCE_NUM_THREADS"] = m.threads
    return ov_config


def open_engine(m: ModelConfig) -> Engine:
    """One model section's IR, verified and compiled with its device settings, at its threshold."""
    checksums = (m.checksums or Path(m.path).parent / "SHA256SUMS") if m.verify_checksum else None
    engine = Engine(m.path, m.device, compile_settings(m), checksums)
    resolve_threshold(engine, m)
    return engine


def load_engine(cfg: KioskConfig) -> Engine:
    """The model the kiosk runs (an installed bundle's, else model.path), checked against its
    SHA256SUMS and metadata."""
    return open_engine(active_model(cfg))


def probe_model(m: ModelConfig) -> Engine:
    """The model loaded as the kiosk loads it (checksums, metadata, shapes, device), then one
    grey frame classified: its probabilities must be finite and sum to 1. `mpox check` and a
    model install (edge/rollout.py) both run this; whether the model's answers mean anything
    is the bundle's probe set's to show (edge/probeset.py), at install."""
    engine = open_engine(m)
    s = engine.info.input_size
    probs = engine.classify_frame(np.full((s, s, 3), 128, np.uint8))
    if not (np.all(np.isfinite(probs)) and abs(float(probs.sum()) - 1) < 1e-3):
        raise ModelError(f"{m.path} gives unusable output on a probe frame: {np.round(probs, 4).tolist()}")
    return engine


def engine_for_start(cfg: KioskConfig) -> Engine:
    """The engine a starting kiosk runs. An installed model that does not load or classify a
    probe frame is rolled back (one log line) and the previous one loaded; one not yet
    confirmed (on trial) also when the kiosk has started on it too often."""
    store = ModelStore.of(cfg)
    try:
        while (folder := store.current()) is not None:
            if not store.confirmed(folder):
                starts = store.count_start(folder)
                if starts > cfg.rollout.trial_starts:
                    store.rollback(folder, f"the kiosk started {starts - 1} times on it without it becoming healthy "
                                           "(a crash, a hang or a power cut)")
                    continue
                log.info("model %s on trial (start %d of %d): confirmed after %d frames", folder.name, starts,
                         cfg.rollout.trial_starts, cfg.rollout.trial_frames)
            try:
                return probe_model(active_model(cfg))
            except (ModelError, RolloutError, RuntimeError) as e:  # RuntimeError: OpenVINO on the probe frame
                store.rollback(folder, f"does not load: {openvino_reason(e)}")
    except PermissionError as e:  # installed as another user (edge/rollout.py hands over to the state folder's owner now)
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = str(os.geteuid())
        log.error("the installed models in %s cannot be used by %s (%s: %s): they were written by another user; the "
                  "kiosk runs %s instead. Fix: sudo chown -R %s: %s", store.root, user, e.filename, e.strerror,
                  cfg.model.path.name, user, store.root)
        return open_engine(cfg.model)
    return load_engine(cfg)
