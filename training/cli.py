"""Research commands of `mpox` (need the `train` extra): train, evaluate, export."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click
import torch

from edge.commands import user_errors as edge_user_errors
from training.dermnet import DEFAULT_CACHE, DEFAULT_MSID, DEFAULT_RESERVED, OtherSource
from training.errors import TrainingError
from training.experiment import VIEWS
from training.models import MODEL_NAMES
from training.models.fast_mpoxnet import BODIES
from training.skin import SkinConfig


def user_errors(fn):
    """A TrainingError (or a KioskError, e.g. a bad model file) becomes one clear line and
    exit status 1, not a traceback."""
    return edge_user_errors(TrainingError)(fn)


@click.command()
@click.option("--data", required=True, type=click.Path(), help="ImageFolder root: DATA/<class>/<image>.")
@click.option("--model", "model_name", default="fast-mpoxnet", show_default=True, type=click.Choice(MODEL_NAMES))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--cv", "folds", type=int, default=0, help="Grouped stratified K-fold CV instead of a final model.")
@click.option("--fold", "only_folds", type=int, multiple=True, help="With --cv: run only these folds (resumable).")
@click.option("--epochs", type=int, help="Epochs (default: the model's).")
@click.option("--lr", type=float, help="Peak learning rate (default: the model's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--views", type=int, default=VIEWS, show_default=True, help="Augmented views per training image.")
@click.option("--distill/--no-distill", default=True, show_default=True, help="Distil from an EfficientNet-Lite0 teacher.")
@click.option("--augment/--no-augment", default=True, show_default=True)
@click.option("--body", type=click.Choice(BODIES), default=BODIES[0], show_default=True,
              help="Fast-MpoxNet's body: ImageNet-pretrained EfficientNet-Lite0 prefix, or ShuffleNetV2 x0.5 from scratch.")
@click.option("--ablgfm/--no-ablgfm", default=True, show_default=True, help="Fast-MpoxNet's fusion module.")
@click.option("--aux/--no-aux", default=True, show_default=True, help="Fast-MpoxNet's auxiliary losses.")
@click.option("--pre-distill-epochs", type=int, help="ImageNet pre-distillation epochs (Fast-MpoxNet with --distill).")
@click.option("--skin", type=click.Path(), help="Start from a skin-pretrained Lite0 backbone (mpox skin-pretrain): "
              "the teacher's, and Fast-MpoxNet's Lite0 body.")
@click.option("--other-from", "other_cache", type=click.Path(path_type=Path),
              help="A DermNet cache (mpox dermnet build): its photos add an 'Other' class and more measles.")
@click.option("--threads", type=int, default=0, help="torch threads (0: all cores).")
@user_errors
def train(data, model_name, out, folds, only_folds, epochs, lr, seed, views, distill, augment, body, ablgfm, aux, pre_distill_epochs,
          skin, other_cache, threads):
    """Train a model (a final one, or --cv K folds) on an ImageFolder."""
    from training import experiment
    from training.train import TEACHER_CONFIG, TrainConfig, init_distributed

    if not Path(data).is_dir():
        raise TrainingError(f"data folder not found: {data}")
    if threads:
        torch.set_num_threads(threads)
    init_distributed()
    base = TrainConfig() if model_name == "fast-mpoxnet" else replace(TEACHER_CONFIG, model=model_name)
    cfg = replace(base, seed=seed, body=body, ablgfm=ablgfm, aux_heads=aux, skin=skin or "",
                  **{k: v for k, v in (("epochs", epochs), ("lr", lr), ("pre_distill_epochs", pre_distill_epochs)) if v is not None})
    distill = distill and model_name == "fast-mpoxnet"
    other = OtherSource(other_cache, seed=seed) if other_cache else None
    if folds:
        summary = experiment.run_cv(data, out, cfg, folds, distill, augment, views, only_folds=only_folds, other=other)
        s = summary["summary"]
        click.echo(f"{folds}-fold CV: accuracy {s['accuracy']['mean']:.4f} +- {s['accuracy']['sd']:.4f}, mpox sensitivity "
                   f"{s['Monkeypox.recall']['mean']:.4f} +- {s['Monkeypox.recall']['sd']:.4f} -> {out}/summary.json")
    else:
        path = experiment.run_final(data, out, cfg, distill, augment, views, other=other)
        click.echo(f"model -> {path}")


@click.command()
@click.option("--data", required=True, type=click.Path(), help="ImageFolder the teacher was trained on.")
@click.option("--teacher", type=click.Path(path_type=Path), help="Teacher IR (e.g. models/efficientnet-lite0.xml); with --cv each fold's own teacher.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--epochs", type=int, default=150, show_default=True)
@click.option("--lr", type=float, default=3e-3, show_default=True)
@click.option("--mixup", "mixup_alpha", type=float, default=1.0, show_default=True, help="Beta(a, a) mixing weight; 0: none.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--body", type=click.Choice(BODIES), default=BODIES[0], show_default=True, help="Fast-MpoxNet's body.")
@click.option("--cv", "folds", type=int, default=0, help="Grouped K-fold CV (the folds and cached teachers of `mpox train --cv`).")
@click.option("--fold", "only_folds", type=int, multiple=True, help="With --cv: run only these folds (resumable).")
@click.option("--threads", type=int, default=0, help="torch threads (0: all cores).")
@user_errors
def distill(data, teacher, out, epochs, lr, mixup_alpha, seed, body, folds, only_folds, threads):
    """Train Fast-MpoxNet by function matching from an exported teacher IR (final model)."""
    from training import experiment
    from training.function_matching import MatchingConfig
    from training.train import TrainConfig

    if not Path(data).is_dir():
        raise TrainingError(f"data folder not found: {data}")
    if threads:
        torch.set_num_threads(threads)
    cfg = MatchingConfig(epochs=epochs, lr=lr, mixup_alpha=mixup_alpha, seed=seed)
    student = TrainConfig(seed=seed, body=body)
    if folds:
        summary = experiment.run_matching_cv(data, out, student, cfg, folds, only_folds)
        click.echo(json.dumps(summary["summary"], indent=2))
        return
    if teacher is None or not teacher.is_file():
        raise TrainingError(f"teacher model not found: {teacher}" if teacher else "--teacher is needed without --cv")
    path = experiment.run_matching(data, out, teacher, student, cfg)
    click.echo(f"model -> {path}")


@click.command()
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="A CV run folder or a final run folder.")
@click.option("--data", required=True, type=click.Path(), help="The ImageFolder it was trained on.")
@user_errors
def rethreshold(run_dir, data):
    """Choose the models' mpox threshold on kiosk views of their validation part (runs made before this was the rule)."""
    from training.experiment import rethreshold as run_rethreshold

    if not Path(data).is_dir():
        raise TrainingError(f"data folder not found: {data}")
    if not (run_dir / "model.pt").is_file() and not (run_dir / "config.json").is_file():
        raise TrainingError(f"not a run folder (no model.pt or config.json): {run_dir}")
    for name, (photo, kiosk) in run_rethreshold(run_dir, data).items():
        click.echo(f"{name}: mpox threshold {photo:.4f} on photos -> {kiosk:.4f} on kiosk views")


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(), help="An ImageFolder of the model's classes.")
@click.option("--dermnet", "dermnet_cache", type=click.Path(path_type=Path),
              help="A DermNet cache: how its held-out photos of other conditions are called.")
@user_errors
def evaluate(checkpoint, data, dermnet_cache):
    """Screening metrics of a checkpoint on an ImageFolder, and/or how it calls DermNet's
    held-out conditions (JSON)."""
    from training import dermnet
    from training.data import load_image_folder
    from training.metrics import called_shares, screening_metrics
    from training.train import load_checkpoint, predict_logits, softmax

    if not data and not dermnet_cache:
        raise TrainingError("give --data, --dermnet or both")
    model, ckpt = load_checkpoint(checkpoint)
    out = {}
    if data:
        ds = load_image_folder(data)
        if ds.classes != ckpt["classes"]:
            raise TrainingError(f"the data's classes {ds.classes} differ from the model's {ckpt['classes']}")
        probs = softmax(predict_logits(model, ds.images))
        out["data"] = screening_metrics(ds.labels, probs, ds.classes, ckpt["threshold"])
    if dermnet_cache:
        dn = dermnet.load(dermnet_cache)
        for split in ("holdout-condition", "holdout-image"):
            idx = [i for i in dn.where(split) if dn.conditions[i] != dermnet.MEASLES_LABEL]
            probs = softmax(predict_logits(model, dermnet.center_crops([dn.bands[i] for i in idx])))
            out[f"dermnet_{split}"] = called_shares(probs, ckpt["classes"], ckpt["threshold"])
    click.echo(json.dumps(out if dermnet_cache else out["data"], indent=2))


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .xml (an .onnx is written beside it).")
@click.option("--name", help="Model name stored in the IR (default: the checkpoint's model).")
@click.option("--version", "model_version", default="1.0.0", show_default=True)
@click.option("--onnx/--no-onnx", default=True, show_default=True)
@click.option("--weights", type=click.Choice(["auto", "fp32", "fp16"]), default="auto", show_default=True,
              help="Stored weight precision (auto: fp16 above 1M parameters). Quantize from fp32.")
@click.option("--threshold-from-cv", type=click.Path(path_type=Path),
              help="A CV run of the same recipe: the mpox threshold becomes the median of its folds' and this run's.")
@user_errors
def export(checkpoint, out, name, model_version, onnx, weights, threshold_from_cv):
    """Export a checkpoint to OpenVINO IR (and ONNX) with its metadata."""
    from training.export import export_checkpoint

    xml = export_checkpoint(checkpoint, out, name, model_version, onnx, {"auto": None, "fp32": False, "fp16": True}[weights],
                            threshold_from_cv)
    click.echo(f"exported -> {xml}")


@click.command()
@click.option("--data", required=True, type=click.Path())
@click.option("--runs", required=True, type=click.Path(path_type=Path), help="CV runs folder (the main run is RUNS/fast-mpoxnet).")
@click.option("--folds", type=int, default=5, show_default=True)
@click.option("--views", type=int, default=VIEWS, show_default=True, help="Augmented views per training image.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--only", multiple=True, help="Run only the variants whose name contains this text.")
@click.option("--fold", "only_folds", type=int, multiple=True, help="Run only these folds (resumable).")
@user_errors
def ablation(data, runs, folds, views, seed, only, only_folds):
    """The paper's ablation on the same folds and seeds (resumable), then its table."""
    from training import experiment, report
    from training.train import TrainConfig

    if not Path(data).is_dir():
        raise TrainingError(f"data folder not found: {data}")
    base = TrainConfig(seed=seed)
    for v in report.ABLATION:
        if only and not any(o in v.name for o in only):
            continue
        click.echo(f"== {v.name}", err=True)
        experiment.run_cv(data, report.variant_dir(runs, v), report.variant_config(base, v), folds, v.distill, v.augment,
                          views, runs_root=runs, only_folds=only_folds)
    click.echo(report.render(runs, runs / "cache" / f"seed{seed}-folds{folds}"))


@click.command(name="report")
@click.option("--runs", required=True, type=click.Path(path_type=Path), help="CV runs folder, as given to `mpox ablation`.")
@click.option("--folds", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def report_cmd(runs, folds, seed):
    """The ablation and version tables and the statistics of the CV runs finished so far, without training."""
    from training import report

    if not (runs / "fast-mpoxnet").is_dir():
        raise TrainingError(f"no Fast-MpoxNet CV run in {runs}: run `mpox train --cv {folds} --out {runs}/fast-mpoxnet` first")
    click.echo(report.render(runs, runs / "cache" / f"seed{seed}-folds{folds}"))


@click.group()
def dermnet() -> None:
    """DermNet's photos as a local cache for skin pretraining and the 'Other' class."""


@dermnet.command("build")
@click.option("--snapshot", required=True, type=click.Path(path_type=Path),
              help="The snapshot of github.com/MinhKemm/DermNet_Dataset@2df7ed1: a bare git dir (fetch's mirror) or a checkout.")
@click.option("--cache", type=click.Path(path_type=Path), default=str(DEFAULT_CACHE), show_default=True)
@click.option("--reserved", type=click.Path(path_type=Path), default=str(DEFAULT_RESERVED), show_default=True,
              help="The files never to train on (sha256 and path).")
@click.option("--msid", type=click.Path(path_type=Path), default=str(DEFAULT_MSID), show_default=True,
              help="MSID photos, whose near-duplicates are left out too.")
@user_errors
def dermnet_build(snapshot, cache, reserved, msid):
    """Verify the snapshot against the pinned list, leave out reserved pictures and
    near-duplicates, cut the logo off and write the cache."""
    from collections import Counter

    from training import dermnet as dn

    m = dn.build(snapshot, cache, reserved, msid)
    splits = Counter(e["split"] for e in m["images"])
    dropped = Counter(d["reason"] for d in m["dropped"])
    click.echo(f"cached {len(m['images'])} photos in {cache}: {dict(splits)}; left out {dict(dropped)}")


@dermnet.command("pin")
@click.option("--snapshot", required=True, type=click.Path(path_type=Path))
@user_errors
def dermnet_pin(snapshot):
    """Write the pinned list (sha256 and path of every image) from a snapshot you trust."""
    from training import dermnet as dn

    click.echo(f"pinned {dn.pin(snapshot)} images in {dn.PINNED}")


@click.command("skin-pretrain")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder (resumed if it holds state.pt).")
@click.option("--cache", type=click.Path(path_type=Path), default=str(DEFAULT_CACHE), show_default=True)
@click.option("--reserved", type=click.Path(path_type=Path), default=str(DEFAULT_RESERVED), show_default=True)
@click.option("--epochs", type=int, default=SkinConfig.epochs, show_default=True)
@click.option("--threads", type=int, default=0, help="torch threads (0: all cores).")
@user_errors
def skin_pretrain(out, cache, reserved, epochs, threads):
    """Skin pretraining: EfficientNet-Lite0 learns DermNet's conditions (resumable; a log in OUT/log.txt)."""
    from training import skin

    if threads:
        torch.set_num_threads(threads)
    facts = skin.pretrain(cache, out, SkinConfig(epochs=epochs), reserved)
    last = facts["epochs"][-1]
    click.echo(f"{len(facts['epochs'])} epochs, {facts['seconds'] / 60:.1f} min; held-out top-1 {last['val_top1']:.3f}, "
               f"top-5 {last['val_top5']:.3f} -> {out / 'skin-lite0.pt'}")
