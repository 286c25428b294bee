"""`mpox quantize` and `mpox quantize-cv` (need the `train` extra: nncf imports torch)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from quantization.settings import Settings, default
from training.cli import user_errors
from training.dermnet import OtherSource
from training.errors import TrainingError


def settings_options(fn):
    for option in reversed([
        click.option("--subset-size", type=int, default=default("subset_size"), show_default=True, help="Calibration images (at most)."),
        click.option("--preset", type=click.Choice(["performance", "mixed"]), default=default("preset"), show_default=True),
        click.option("--fast-bias-correction/--bias-correction", default=default("fast_bias_correction"), show_default=True),
        click.option("--max-drop", type=float, default=default("max_drop"), show_default=True,
                     help="Largest share of control inputs (validation photos, kiosk views) whose decision int8 may change."),
        click.option("--accuracy-control/--no-accuracy-control", default=default("accuracy_control"), show_default=True),
        click.option("--kiosk-views/--photos-only", default=default("kiosk_views"), show_default=True,
                     help="Calibrate on a kiosk view of each calibration photo too."),
        click.option("--other-from", "other_cache", type=click.Path(path_type=Path),
                     help="The DermNet cache a model with an 'Other' class was trained with."),
    ]):
        fn = option(fn)
    return fn


def make_settings(subset_size, preset, fast_bias_correction, max_drop, accuracy_control, kiosk_views, seed=0) -> Settings:
    return Settings(subset_size, preset, fast_bias_correction, max_drop, accuracy_control, seed, kiosk_views=kiosk_views)


def other_source(other_cache: Path | None) -> OtherSource | None:
    return OtherSource(other_cache) if other_cache else None


@click.command()
@click.option("--model", "xml", required=True, type=click.Path(path_type=Path), help="Float IR with metadata (mpox export).")
@click.option("--data", required=True, type=click.Path(), help="ImageFolder the model was trained on.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output int8 .xml.")
@settings_options
@user_errors
def quantize(xml, data, out, other_cache, **options):
    """Quantize an IR to int8 with NNCF, keeping mpox sensitivity (accuracy control)."""
    from quantization.quantize import quantize_ir

    if not Path(data).is_dir():
        raise TrainingError(f"data folder not found: {data}")
    report = quantize_ir(xml, data, out, make_settings(**options), other_source(other_cache))
    click.echo(json.dumps(report, indent=2))
    click.echo(f"int8 model -> {out}")


@click.command("quantize-cv")
@click.option("--data", required=True, type=click.Path())
@click.option("--checkpoints", required=True, help="Per-fold checkpoints, '{fold}' in place of the fold number.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="JSON report.")
@click.option("--folds", type=int, default=5, show_default=True)
@click.option("--fold", "only_folds", type=int, multiple=True, help="Only these folds (default: every fold with a checkpoint).")
@click.option("--save/--no-save", default=False, show_default=True,
              help="Keep each fold's float and int8 IRs beside its checkpoint (model.xml, model-int8.xml), for `mpox simulate --runs`.")
@settings_options
@user_errors
def quantize_cv(data, checkpoints, out, folds, only_folds, save, other_cache, **options):
    """fp32 vs int8 on every CV fold: calibrate on the fold's training part, test on its held-out part."""
    from quantization.crossval import int8_cv

    if not Path(data).is_dir():
        raise TrainingError(f"data folder not found: {data}")
    summary = int8_cv(data, checkpoints, out, folds, make_settings(**options), save, only_folds, other_source(other_cache))
    click.echo(json.dumps(summary["summary"], indent=2))
