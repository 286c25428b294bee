"""Cross-validation and final training runs, resumable fold by fold.

A CV run folder holds one sub-folder per fold with that fold's `metrics.json` (written when
the fold finishes; a rerun skips finished folds) and `summary.json` with mean +- sd. Teachers
and their logits on the fold's augmented views are cached under `<runs>/cache/`, keyed by
seed and fold, so every student variant of an ablation shares them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from edge.contract import MPOX_LABEL
from training import plots
from training.augment import augmented_views
from training.data import (
    ImageSet,
    group_near_duplicates,
    grouped_folds,
    load_image_folder,
    validation_split,
)
from training.dermnet import OTHER_LABEL, OtherSource
from training.function_matching import IRTeacher, MatchingConfig, TorchTeacher, function_matching
from training.metrics import called_shares, choose_class_bias, choose_threshold, screening_metrics, shift_class, summarise
from training.train import (
    TEACHER_CONFIG,
    TrainConfig,
    fit,
    imagenet_logits,
    load_checkpoint,
    predict_logits,
    save_checkpoint,
    softmax,
    world,
)

log = logging.getLogger(__name__)

VAL_FRACTION = 0.15
VIEWS = 8  # augmented views of each training image (an epoch shows one): `mpox train --views`'s default
TEACHER_VIEWS = 8  # augmented views a teacher trains on when the student sees plain images
KIOSK_VIEWS = 8  # views of each validation image the mpox threshold is chosen on (averaged, as the kiosk averages frames)


def main_process() -> bool:
    """Under torchrun every rank trains; only rank 0 writes files."""
    return world()[0] == 0


def write_json(path: Path, obj) -> None:
    if not main_process():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)  # a fold's result appears whole or not at all


def prepare(data_dir: str | Path, other: OtherSource | None = None) -> tuple[ImageSet, np.ndarray]:
    """The data folder, plus DermNet's photos (another class and more measles) when `other`
    says so; near-duplicate groups, and one group per DermNet condition, so that a fold tests
    on conditions its model never saw."""
    ds = load_image_folder(data_dir)
    groups = group_near_duplicates(ds.images)
    if other is not None:
        ds, groups = other.add_to(ds, groups)
    log.info("%d images, %d classes, %d near-duplicate groups", len(ds), len(ds.classes), groups.max() + 1)
    return ds, groups


def cached(file: Path, compute) -> np.ndarray:
    """np.load(file), or compute() saved to file (by rank 0) for the next run."""
    if file.exists():
        return np.load(file)
    value = compute()
    if main_process():
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, value)
    return value


def fold_teacher(cache: Path, cfg: TrainConfig, train: ImageSet, tr: np.ndarray, va: np.ndarray, views: np.ndarray,
                 augment: bool, views_seed: int, show_progress: bool) -> torch.nn.Module:
    """The fold's EfficientNet-Lite0 teacher: loaded from the cache, or trained once on
    augmented views (made here if the student's `views` are plain) and cached."""
    teacher_file = cache / "aug" / "teacher.pt"
    if teacher_file.exists():
        return load_checkpoint(teacher_file)[0]
    tcfg = replace(TEACHER_CONFIG, seed=cfg.seed, skin=cfg.skin)
    tviews = views if augment else fold_views(train.images, True, TEACHER_VIEWS, views_seed, cache)
    result = fit(tcfg, tviews[:, tr], train.labels[tr], train.images[va], train.labels[va], train.classes, show_progress=show_progress)
    if main_process():
        teacher_file.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(teacher_file, tcfg, result, train.classes, train.data_hash)
    return result["model"]


def train_one(cfg: TrainConfig, train: ImageSet, groups: np.ndarray, views: np.ndarray, cache: Path, teacher: bool,
              augment: bool, views_seed: int, show_progress: bool = True) -> tuple[dict, np.ndarray]:
    """Fit cfg on `train` (a validation part held out inside it), distilling from the fold's
    cached teacher when asked. Returns the student's result and the validation indices."""
    tr, va = validation_split(train.labels, groups, VAL_FRACTION, cfg.seed)
    teacher_logits = imagenet_targets = None
    if teacher:
        kind = cache / ("aug" if augment else "plain")

        def teacher_on_views() -> np.ndarray:
            model = fold_teacher(cache, cfg, train, tr, va, views, augment, views_seed, show_progress)
            return np.stack([predict_logits(model, v) for v in views])

        teacher_logits = cached(kind / "teacher_logits.npy", teacher_on_views)[:, tr]
        if cfg.pre_distill_epochs > 0:
            imagenet_targets = cached(kind / "imagenet_logits.npy", lambda: imagenet_logits(views))[:, tr]
    result = fit(cfg, views[:, tr], train.labels[tr], train.images[va], train.labels[va], train.classes, teacher_logits,
                 show_progress, imagenet_targets)
    set_kiosk_threshold(result, train.images[va], train.labels[va], train.classes, cfg.seed)
    return result, va


def kiosk_view_threshold(view_probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> float:
    """The mpox threshold chosen (>= 95% sensitivity) on what the kiosk's box shows of the
    validation images (kiosk_view_probs), not on the photos themselves: a photo-chosen
    threshold is far too low for those views: they move probability towards mpox."""
    return choose_threshold(labels, view_probs, classes.index(MPOX_LABEL)) if MPOX_LABEL in classes else 0.5


def kiosk_view_probs(model: torch.nn.Module, images: np.ndarray, seed: int) -> np.ndarray:
    """Mean probabilities over KIOSK_VIEWS views of each image (the training augmentation:
    held on skin or before a wall, off centre, blurred, noisy, compressed), averaged as the
    kiosk averages frames."""
    views = augmented_views(images, KIOSK_VIEWS, seed + 7)
    return np.mean([softmax(predict_logits(model, v)) for v in views], 0)


def set_kiosk_threshold(result: dict, val_images: np.ndarray, val_labels: np.ndarray, classes: list[str], seed: int) -> None:
    """Replace fit's photo-chosen threshold with the kiosk-view one (kept as photo_threshold),
    after moving an "Other" class's logit by the offset validation prefers (metrics.
    choose_class_bias; written into the model's classifier, so every runtime decides alike).
    The validation's labels and kiosk-view probabilities stay in the result (save_fold writes them)."""
    result["photo_threshold"] = result["threshold"]
    result["val_labels"] = val_labels
    result["val_view_probs"] = kiosk_view_probs(result["model"], val_images, seed)
    if OTHER_LABEL in classes:
        other = classes.index(OTHER_LABEL)
        result["other_bias"] = choose_class_bias(val_labels, result["val_view_probs"], classes, other)
        shift_classifier_bias(result["model"], other, result["other_bias"])
        for key in ("val_probs", "val_view_probs"):
            result[key] = shift_class(result[key], other, result["other_bias"])
    result["threshold"] = kiosk_view_threshold(result["val_view_probs"], val_labels, classes)
    result["val_metrics"] = screening_metrics(val_labels, result["val_probs"], classes, result["threshold"])


def shift_classifier_bias(model: torch.nn.Module, index: int, bias: float) -> None:
    """Move class `index`'s logit by `bias` in the model itself: the bias of its last linear layer."""
    last = [m for layer in model.classifier_layers() for m in layer.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias[index] += bias


def fold_views(images: np.ndarray, augment: bool, n_views: int, seed: int, cache: Path | None = None) -> np.ndarray:
    """The training images' augmented views (or the images themselves without augmentation),
    kept in `cache` (a few hundred MB a fold) because making them costs minutes."""
    if not augment:
        return images[None]
    file = cache / f"views{n_views}-seed{seed}.npy" if cache else None
    if file is not None and file.exists():
        views = np.load(file, mmap_mode="r")
        if views.shape[1:] == images.shape:
            return views
    views = augmented_views(images, n_views, seed)
    if file is not None and main_process():
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, views)
    return views


def teacher_test_metrics(cache: Path, ds: ImageSet, test: np.ndarray) -> None:
    """The fold's teacher (EfficientNet-Lite0) on the fold's test images, once: its CV row."""
    teacher_file, predictions_file = cache / "aug" / "teacher.pt", cache / "aug" / "test_predictions.npz"
    if teacher_file.exists() and not predictions_file.exists() and main_process():
        teacher, facts = load_checkpoint(teacher_file)
        probs = softmax(predict_logits(teacher, ds.images[test]))
        np.savez(predictions_file, index=test, labels=ds.labels[test], probs=probs)
        write_json(cache / "aug" / "test_metrics.json", screening_metrics(ds.labels[test], probs, ds.classes, facts["threshold"]))


def save_fold(fold_dir: Path, k: int, cfg: TrainConfig, result: dict, ds: ImageSet, test: np.ndarray, t0: float,
              checkpoint_extra: dict | None = None) -> dict:
    """A CV fold's model on its held-out images: writes the test predictions, the checkpoint
    (for the int8 CV), history and metrics.json; returns the metrics."""
    test_probs = softmax(predict_logits(result["model"], ds.images[test]))
    own = np.array([not ds.paths[i].startswith("dermnet:") for i in test], bool)
    metrics = screening_metrics(ds.labels[test][own], test_probs[own], ds.classes, result["threshold"])
    if not own.all():  # the fold's DermNet photos: how the other conditions (never seen in training) are called
        other = ds.labels[test] == ds.classes.index(OTHER_LABEL)
        metrics["dermnet_other"] = called_shares(test_probs[~own & other], ds.classes, result["threshold"])
    metrics.update(fold=k, best_epoch=result["best_epoch"], seconds=round(time.time() - t0, 1),
                   parameters=int(result["model"].deploy_parameters()),
                   **({"other_bias": result["other_bias"]} if "other_bias" in result else {}))
    if main_process():
        fold_dir.mkdir(parents=True, exist_ok=True)
        np.savez(fold_dir / "test_predictions.npz", index=test, labels=ds.labels[test], probs=test_probs,
                 paths=np.array([ds.paths[i] for i in test]))  # the held-out images, for the session simulator
        if "val_view_probs" in result:  # for decision rules chosen on validation after training
            np.savez(fold_dir / "validation_predictions.npz", labels=result["val_labels"], probs=result["val_probs"],
                     view_probs=result["val_view_probs"])
        save_checkpoint(fold_dir / "model.pt", cfg, result, ds.classes, ds.data_hash, checkpoint_extra)
    write_json(fold_dir / "history.json", result["history"])
    write_json(fold_dir / "metrics.json", metrics)
    log.info("fold %d: accuracy %.3f, mpox sensitivity %.3f (%.0f s)", k, metrics["accuracy"],
             metrics["per_class"].get("Monkeypox", {}).get("recall", float("nan")), metrics["seconds"])
    return metrics


def save_final(out: Path, cfg: TrainConfig, result: dict, ds: ImageSet, t0: float, checkpoint_extra: dict | None = None,
               metrics_extra: dict | None = None) -> None:
    """A final model's run folder: model.pt, history, metrics.json (validation figures) and plots."""
    if not main_process():
        return
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "model.pt", cfg, result, ds.classes, ds.data_hash, checkpoint_extra)
    write_json(out / "history.json", result["history"])
    write_json(out / "metrics.json", {"validation": result["val_metrics"], "best_epoch": result["best_epoch"],
                                      "seconds": round(time.time() - t0, 1), "threshold": result["threshold"],
                                      **(metrics_extra or {})})
    plots.training_curves(result["history"], out / "curves.png")
    plots.confusion(np.array(result["val_metrics"]["confusion_matrix"]), ds.classes, out / "confusion.png")


def cv_summary(folds: list[dict]) -> dict:
    return {"folds": len(folds), "summary": summarise(folds) if folds else {}, "per_fold": folds}


def write_summary(out: Path) -> None:
    """`out`/summary.json over every finished fold on disk: a run of some folds (--fold) adds
    to the run's summary instead of replacing it with its own folds."""
    write_json(out / "summary.json", cv_summary([json.loads(f.read_text()) for f in sorted(out.glob("fold*/metrics.json"))]))


def dataset_folds(ds: ImageSet, groups: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped CV folds. The data folder's photos are split exactly as without DermNet (so its
    figures compare with earlier runs'); DermNet's photos are split on their own, whole
    conditions to a fold."""
    own = np.array([not p.startswith("dermnet:") for p in ds.paths])
    base = np.nonzero(own)[0]
    splits = [(base[tr], base[te]) for tr, te in grouped_folds(ds.labels[base], groups[base], folds, seed)]
    extra = np.nonzero(~own)[0]
    if not len(extra):
        return splits
    extra_splits = GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(extra, groups=groups[extra])
    return [(np.concatenate([tr, extra[etr]]), np.concatenate([te, extra[ete]])) for (tr, te), (etr, ete) in zip(splits, extra_splits)]


def cache_key(cfg: TrainConfig, folds: int, other: OtherSource | None) -> str:
    """The folder of a fold's cached views and teacher: runs that differ in data or in the
    teacher's start never share them."""
    return f"seed{cfg.seed}-folds{folds}" + ("-skin" if cfg.skin else "") + ("-other" if other else "")


def run_cv(data_dir: str | Path, out: Path, cfg: TrainConfig, folds: int = 5, distill: bool = True, augment: bool = True,
           n_views: int = VIEWS, runs_root: Path | None = None, only_folds: tuple[int, ...] = (),
           other: OtherSource | None = None) -> dict:
    ds, groups = prepare(data_dir, other)
    splits = dataset_folds(ds, groups, folds, cfg.seed)
    cache_root = (runs_root or out.parent) / "cache" / cache_key(cfg, folds, other)
    write_json(out / "config.json", {"config": asdict(cfg), "folds": folds, "distill": distill, "augment": augment,
                                     "views": n_views, "data": str(data_dir), "data_hash": ds.data_hash,
                                     "other": None if other is None else {k: str(v) for k, v in asdict(other).items()}})
    results = []
    for k, (tr, te) in enumerate(splits):
        if only_folds and k not in only_folds:
            continue
        fold_dir = out / f"fold{k}"
        cache = cache_root / f"fold{k}"
        if (fold_dir / "metrics.json").exists():
            teacher_test_metrics(cache, ds, te)
            results.append(json.loads((fold_dir / "metrics.json").read_text()))
            log.info("fold %d: done before, skipped", k)
            continue
        t0 = time.time()
        train = ds.subset(tr)
        views_seed = cfg.seed * 100 + k
        views = fold_views(train.images, augment, n_views, views_seed, cache)
        result, _ = train_one(cfg, train, groups[tr], views, cache, distill, augment, views_seed)
        results.append(save_fold(fold_dir, k, cfg, result, ds, te, t0))
        teacher_test_metrics(cache, ds, te)
    write_summary(out)
    if main_process():
        plots.cv_plots(out, ds.classes)
    return cv_summary(results)


def run_final(data_dir: str | Path, out: Path, cfg: TrainConfig, distill: bool = True, augment: bool = True,
              n_views: int = VIEWS, teacher_cache: Path | None = None, other: OtherSource | None = None) -> Path:
    """Train on all of data_dir (a validation part held inside it for early stopping and the
    threshold) and write `<out>/model.pt`, `metrics.json` and plots."""
    ds, groups = prepare(data_dir, other)
    views_seed = cfg.seed * 100 + 99
    cache = teacher_cache or out / "teacher"
    views = fold_views(ds.images, augment, n_views, views_seed, cache)
    t0 = time.time()
    result, va = train_one(cfg, ds, groups, views, cache, distill, augment, views_seed)
    save_final(out, cfg, result, ds, t0)
    return out / "model.pt"


def run_matching(data_dir: str | Path, out: Path, teacher_xml: str | Path, student: TrainConfig,
                 cfg: MatchingConfig, show_progress: bool = True) -> Path:
    """A final Fast-MpoxNet by function matching from an exported teacher IR, on the training
    part of the same grouped split the teacher was trained with (so its validation part stays
    unseen by both); writes `<out>/model.pt`, `metrics.json` and plots like run_final."""
    ds, groups = prepare(data_dir)
    tr, va = validation_split(ds.labels, groups, VAL_FRACTION, student.seed)
    teacher = IRTeacher(teacher_xml)
    t0 = time.time()
    result = function_matching(student, cfg, teacher, ds.images[tr], ds.images[va], ds.labels[va], ds.classes, show_progress)
    save_final(out, student, result, ds, t0,
               {"recipe": "function matching", "teacher": f"{teacher.info.name} {teacher.info.version}", "matching": asdict(cfg)},
               {"recipe": "function matching", "teacher": str(teacher_xml)})
    return out / "model.pt"


def run_matching_cv(data_dir: str | Path, out: Path, student: TrainConfig, cfg: MatchingConfig, folds: int = 5,
                    only_folds: tuple[int, ...] = (), runs_root: Path | None = None) -> dict:
    """Function matching on the grouped CV folds of run_cv (same splits, seeds and cached
    fold teachers): each fold's student learns from that fold's EfficientNet-Lite0 teacher,
    trained on the fold's training part only, and is tested on the held-out part. Resumable."""
    ds, groups = prepare(data_dir)
    splits = grouped_folds(ds.labels, groups, folds, student.seed)
    cache_root = (runs_root or out.parent) / "cache" / f"seed{student.seed}-folds{folds}"
    results = []
    for k, (fold_train, te) in enumerate(splits):
        if only_folds and k not in only_folds:
            continue
        fold_dir = out / f"fold{k}"
        if (fold_dir / "metrics.json").exists():
            results.append(json.loads((fold_dir / "metrics.json").read_text()))
            continue
        t0 = time.time()
        train, cache, views_seed = ds.subset(fold_train), cache_root / f"fold{k}", student.seed * 100 + k
        tr, va = validation_split(train.labels, groups[fold_train], VAL_FRACTION, student.seed)
        views = fold_views(train.images, True, TEACHER_VIEWS, views_seed, cache)
        teacher = TorchTeacher(fold_teacher(cache, student, train, tr, va, views, True, views_seed, True), ds.classes)
        del views
        result = function_matching(student, cfg, teacher, train.images[tr], train.images[va], train.labels[va], ds.classes)
        results.append(save_fold(fold_dir, k, student, result, ds, te, t0, {"recipe": "function matching"}))
    write_summary(out)
    return cv_summary(results)


def rethreshold(run: Path, data_dir: str | Path) -> dict[str, tuple[float, float]]:
    """Give the finished models of a run folder (a CV run's folds, or a final run) the
    kiosk-view threshold of their own validation part, in their checkpoint and metrics.json.
    Returns {model folder: (photo threshold, kiosk-view threshold)}."""
    ds, groups = prepare(data_dir)
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else None
    if config is not None:  # a CV run: each fold's training part, split as run_cv split it
        splits = dataset_folds(ds, groups, config["folds"], config["config"]["seed"])
        parts = {run / f"fold{k}": tr for k, (tr, _) in enumerate(splits)}
    else:
        parts = {run: np.arange(len(ds))}
    changed = {}
    for folder, part in parts.items():
        ckpt_file = folder / "model.pt"
        if not ckpt_file.is_file():
            continue
        model, ckpt = load_checkpoint(ckpt_file)
        if "photo_threshold" in ckpt:
            changed[folder.name] = (ckpt["photo_threshold"], ckpt["threshold"])
            continue
        train = ds.subset(part)
        _, va = validation_split(train.labels, groups[part], VAL_FRACTION, ckpt["config"]["seed"])
        view_probs = kiosk_view_probs(model, train.images[va], ckpt["config"]["seed"])
        threshold = kiosk_view_threshold(view_probs, train.labels[va], train.classes)
        changed[folder.name] = (ckpt["threshold"], threshold)
        val_probs = softmax(predict_logits(model, train.images[va]))
        ckpt.update(photo_threshold=ckpt["threshold"], threshold=threshold,
                    val_metrics=screening_metrics(train.labels[va], val_probs, train.classes, threshold))
        if main_process():
            torch.save(ckpt, ckpt_file)
        metrics_file, predictions = folder / "metrics.json", folder / "test_predictions.npz"
        if metrics_file.exists() and predictions.exists():  # a CV fold: its held-out figures at the new threshold
            metrics = json.loads(metrics_file.read_text())
            with np.load(predictions) as p:
                metrics.update(screening_metrics(p["labels"], p["probs"], ds.classes, threshold),
                               photo_threshold=ckpt["photo_threshold"])
            write_json(metrics_file, metrics)
        elif metrics_file.exists():  # a final run: its validation figures at the new threshold
            metrics = json.loads(metrics_file.read_text())
            metrics.update(threshold=threshold, photo_threshold=ckpt["photo_threshold"], validation=ckpt["val_metrics"])
            write_json(metrics_file, metrics)
        log.info("%s: mpox threshold %.4f on photos -> %.4f on kiosk views", folder, changed[folder.name][0], threshold)
    return changed
