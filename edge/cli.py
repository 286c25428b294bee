"""`mpox`: the one command line of the project.

Kiosk commands live here; research commands (train, evaluate, export) live in training/cli.py
and are imported only when called, so the kiosk's `mpox` never imports torch.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

import click

from edge import __version__

LAZY_COMMANDS = {
    "train": "training.cli:train",
    "evaluate": "training.cli:evaluate",
    "export": "training.cli:export",
    "ablation": "training.cli:ablation",
    "report": "training.cli:report_cmd",
    "distill": "training.cli:distill",
    "rethreshold": "training.cli:rethreshold",
    "quantize": "quantization.cli:quantize",
    "quantize-cv": "quantization.cli:quantize_cv",
}


class UserError(click.ClickException):
    """Printed as one line, exit status 1, no traceback."""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str):
        if name not in LAZY_COMMANDS:
            return super().get_command(ctx, name)
        module, attr = LAZY_COMMANDS[name].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as e:
            raise UserError(f"'mpox {name}' needs the training extra ({e.name} is missing): pip install -e '.[train]'") from None


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="mpox")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Mpox screening kiosk: training, quantization and the edge runtime."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


@main.command()
def info() -> None:
    """Show what this installation runs with."""
    import cv2
    import openvino

    from edge import preprocess

    click.echo(f"mpox {__version__}")
    click.echo(f"preprocessing backend: {preprocess.BACKEND}")
    click.echo(f"openvino {openvino.__version__}, opencv {cv2.__version__}")


def default_model() -> Path:
    """The kiosk's default: the shipped Fast-MpoxNet (checkout or installed copy)."""
    from edge.config import ModelConfig

    return ModelConfig().path


def image_paths(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given; folders searched recursively for image files."""
    from edge.images import IMAGE_SUFFIXES

    found = []
    for p in paths:
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(p)
    return found


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="OpenVINO IR (.xml); default: the shipped Fast-MpoxNet.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
@click.option("--device", default="CPU", show_default=True, help="OpenVINO device.")
def classify(paths: tuple[Path, ...], model_path: Path | None, fmt: str, device: str) -> None:
    """Classify image files or folders with an exported model (OpenVINO only)."""
    from edge.images import read_image
    from edge.engine import Engine
    from edge.errors import KioskError

    try:
        engine = Engine(model_path or default_model(), device)
    except KioskError as e:
        raise UserError(str(e)) from None
    labels = engine.info.labels
    files = image_paths(paths)
    if not files:
        raise UserError("no image files found in " + ", ".join(map(str, paths)))
    if fmt == "table":
        click.echo(f"{'label':<12} " + " ".join(f"{name[:10]:>10}" for name in labels) + "  path")
    failed = 0
    for f in files:
        try:
            probs = engine.classify_frame(read_image(f))
        except KioskError as e:
            failed += 1
            if fmt == "jsonl":
                click.echo(json.dumps({"path": str(f), "error": str(e)}))
            else:
                click.echo(f"error: {e}", err=True)
            continue
        label = engine.label(probs)
        if fmt == "jsonl":
            click.echo(json.dumps({"path": str(f), "label": label, "probabilities": {k: round(float(p), 6) for k, p in zip(labels, probs)}}))
        else:
            click.echo(f"{label:<12} " + " ".join(f"{p:>10.4f}" for p in probs) + f"  {f}")
    if failed:
        raise UserError(f"{failed} of {len(files)} images could not be read")


def kiosk_config(path: Path | None):
    from edge.config import load_config
    from edge.errors import KioskError

    try:
        return load_config(path)
    except KioskError as e:
        raise UserError(str(e)) from None


@main.group()
def kiosk() -> None:
    """The screening kiosk: run it, or check its config."""


@kiosk.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML config (default: demo source, shipped model).")
@click.option("--view/--no-view", default=None, help="Terminal view (default: when run in a terminal).")
@click.option("--max-screenings", type=int, help="Stop after this many screenings.")
@click.option("--max-frames", type=int, help="Stop after this many frames.")
def kiosk_run(config_path: Path | None, view: bool | None, max_screenings: int | None, max_frames: int | None) -> None:
    """Screen people continuously until SIGTERM/SIGINT."""
    import signal

    from edge.errors import KioskError
    from edge.kiosk import Kiosk

    cfg = kiosk_config(config_path)
    try:
        k = Kiosk(cfg)
    except KioskError as e:
        raise UserError(str(e)) from None
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: k.stop())
    from edge.outputs import open_outputs

    for output in open_outputs(cfg, k):
        k.outputs.subscribe(output)
    if view is None:
        view = sys.stdout.isatty()
    if view:
        from edge.outputs.terminal import TerminalOutput

        with TerminalOutput(cfg.kiosk_id, f"{k.model.name} {k.model.version} ({k.model.precision})") as terminal:
            k.outputs.subscribe(terminal)
            status = k.run(max_frames, max_screenings)
    else:
        status = k.run(max_frames, max_screenings)
    store = k.store
    click.echo(f"{status.screenings} screenings, {status.frames} frames, {status.dropped} dropped, "
               f"{status.outages} camera outages; audit log {store.path}: {store.written} rows written")
    if store.spilled or store.lost:
        raise UserError(f"{store.spilled} audit rows could not be written to the database and wait in {store.journal} "
                        f"for the next start; {store.lost} were lost")


@kiosk.command("validate-config")
@click.argument("path", type=click.Path(path_type=Path))
def kiosk_validate_config(path: Path) -> None:
    """Check a config file; print the settings it gives."""
    cfg = kiosk_config(path)
    if not cfg.model.path.is_file():  # valid as a value, fatal at start: say so now
        raise UserError(f"{path}: model.path: {cfg.model.path} not found")
    click.echo(cfg.model_dump_json(indent=2))
    click.echo(f"{path}: OK", err=True)


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path))
def check(config_path: Path | None) -> None:
    """Self-test on site: model, native extension, camera, state folder, disk, clock."""
    from edge.check import run_checks

    results = run_checks(kiosk_config(config_path))
    for name, ok, detail in results:
        click.echo(f"{'OK  ' if ok else 'FAIL'} {name:<17} {detail}")
    failed = [name for name, ok, _ in results if not ok]
    if failed:
        raise UserError(f"{len(failed)} check(s) failed: {', '.join(failed)}")


@main.command()
@click.option("--runs", "run_dir", type=click.Path(path_type=Path),
              help="CV run folder (`mpox train --cv`): each fold's held-out photos to that fold's model.")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="The ImageFolder the photos come from.")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Without --runs: one model on every photo of --data (honest only if it never trained on them).")
@click.option("--model-file", default=None, help="With --runs: the fold model's file name in each fold folder [model.xml; model-int8.xml for int8].")
@click.option("--sessions", type=int, help="Visits per fold (with --runs) or in all [40].")
@click.option("--empty", type=int, help="Empty scenes per fold (or in all) [10].")
@click.option("--seed", type=int, help="Same seed, same sessions [0].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Kiosk config whose gate and decision settings to use.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the report and every session as JSON.")
@click.option("--pictures", type=click.Path(path_type=Path), help="Save simulated frames with the box and the classified region (PNG).")
@click.option("--fold", "only_folds", type=int, multiple=True, help="With --runs: only these folds.")
@click.option("--threshold", type=click.Choice(["pooled", "own"]), default="pooled", show_default=True,
              help="With --runs: each fold at the median of the other folds' mpox thresholds (as shipped), or at its own.")
@click.option("--view-check", type=int, help="Instead: argmax accuracy on N photos, on the kiosk's crops of them, and with camera faults.")
@click.option("--presence", is_flag=True, help="Instead: does every photo of --data count as present when it fills the box?")
def simulate(run_dir, data_dir, model_path, model_file, sessions, empty, seed, config_path, out, pictures, only_folds,
             threshold, view_check, presence) -> None:
    """Whole screening sessions from photos, played to the real kiosk loop."""
    from dataclasses import replace

    import numpy as np

    from edge import simulate as sim
    from edge.errors import KioskError

    cfg = kiosk_config(config_path)
    given = {k: v for k, v in (("sessions", sessions), ("empty", empty), ("seed", seed)) if v is not None}
    settings = replace(sim.SimSettings(), **given)
    frames: list = []
    try:
        if presence:
            click.echo(json.dumps(sim.presence_on_photos(sim.folder_pictures(data_dir), settings, cfg, settings.seed), indent=2))
            return
        if view_check:
            from edge.engine import Engine

            if run_dir is not None:  # the first fold given (or fold 0): its own model on its held-out photos
                fold = Path(run_dir) / f"fold{only_folds[0] if only_folds else 0}"
                engine, pictures = Engine(fold / (model_file or sim.FOLD_MODEL)), sim.fold_pictures(data_dir, fold)
            else:
                engine, pictures = Engine(model_path or default_model()), sim.folder_pictures(data_dir)
            click.echo(json.dumps(sim.view_check(engine, pictures, settings, view_check, cfg), indent=2))
            return
        if run_dir is not None:
            report = sim.simulate_runs(run_dir, data_dir, settings, cfg, model_file or sim.FOLD_MODEL, frames, threshold == "pooled",
                                       only_folds)
        else:
            report = sim.simulate_folder(data_dir, model_path or default_model(), settings, cfg, frames)
    except KioskError as e:
        raise UserError(str(e)) from None
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    if pictures and frames:
        import cv2

        tiles = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames[:4]]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 2)
        cv2.imwrite(str(pictures), np.vstack([np.hstack(tiles[i:i + 2]) for i in range(0, len(tiles), 2)]))
    click.echo(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
