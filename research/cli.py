"""`mpox simulate`: research evaluation of whole screenings (research/simulate.py).
Registered in research/commands.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click
import cv2
import numpy as np

from edge.commands import default_model, kiosk_config, user_errors
from research import simulate as sim


@click.command()
@click.option("--runs", "run_dir", type=click.Path(path_type=Path),
              help="CV run folder (`mpox train --cv`): each fold's held-out photos to that fold's model.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="The ImageFolder the photos come from (all but --demo-hours).")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Without --runs: one model on every photo of --data (honest only if it never trained on them).")
@click.option("--model-file", default=None, help="With --runs: the fold model's file name in each fold folder [model.xml; model-int8.xml for int8].")
@click.option("--sessions", type=int, help="Visits per fold (with --runs) or in all [40].")
@click.option("--empty", type=int, help="Empty scenes per fold (or in all) [10].")
@click.option("--seed", type=int, help="Same seed, same sessions [0].")
@click.option("--lead-in", "lead_in_s", type=click.FloatRange(min=0.0),
              help="Seconds of empty room before each approach [drawn per visit: 1.5-3].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Kiosk config whose gate, decision and model compile settings (device, precision, threads) to use.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the report and every session as JSON.")
@click.option("--pictures", type=click.Path(path_type=Path), help="Save simulated frames with the box and the classified region (PNG).")
@click.option("--fold", "only_folds", type=int, multiple=True, help="With --runs: only these folds.")
@click.option("--threshold", type=click.Choice(["pooled", "own"]), default="pooled", show_default=True,
              help="With --runs: each fold at the median of the other folds' mpox thresholds (as shipped), or at its own.")
@click.option("--view-check", type=int, help="Instead: argmax accuracy on N photos, on the kiosk's crops of them, and with camera faults.")
@click.option("--hard-empty", type=int, help="Hard empty scenes of each kind (light, shadows, shake, passers-by) [1].")
@click.option("--demo-hours", type=click.FloatRange(min=0.0, min_open=True),
              help="Instead: the demo's own room through the kiosk loop for this many hours of simulated frames, 'I agree' tapped at random; counts phantom screenings.")
@click.option("--presence", is_flag=True, help="Instead: does every photo of --data count as present when it fills the box?")
@click.option("--dermnet", "dermnet_cache", type=click.Path(path_type=Path),
              help="With --runs of a model trained with DermNet: its cache, to play the folds' DermNet photos too.")
@user_errors()
def simulate(run_dir, data_dir, model_path, model_file, sessions, empty, seed, lead_in_s, config_path, out, pictures,
             only_folds, threshold, view_check, hard_empty, demo_hours, presence, dermnet_cache) -> None:
    """Whole screening sessions from photos, played to the real kiosk loop."""
    cfg = kiosk_config(config_path)
    given = {k: v for k, v in (("sessions", sessions), ("empty", empty), ("seed", seed), ("lead_in_s", lead_in_s),
                               ("hard_empty", hard_empty)) if v is not None}
    settings = replace(sim.SimSettings(), **given)
    if demo_hours:
        click.echo(json.dumps(sim.demo_room(sim.kiosk_engine(model_path or default_model(), cfg), demo_hours, cfg, settings.seed), indent=2))
        return
    if data_dir is None:
        raise click.UsageError("--data is required (the ImageFolder of photos), except with --demo-hours")
    if presence:
        click.echo(json.dumps(sim.presence_on_photos(sim.folder_pictures(data_dir), settings, cfg, settings.seed), indent=2))
        return
    if view_check:
        if run_dir is not None:  # the first fold given (or fold 0): its own model on its held-out photos
            fold = Path(run_dir) / f"fold{only_folds[0] if only_folds else 0}"
            engine, photos = sim.kiosk_engine(fold / (model_file or sim.FOLD_MODEL), cfg), sim.fold_pictures(data_dir, fold, dermnet_cache)
        else:
            engine, photos = sim.kiosk_engine(model_path or default_model(), cfg), sim.folder_pictures(data_dir)
        click.echo(json.dumps(sim.view_check(engine, photos, settings, view_check, cfg), indent=2))
        return
    frames: list = []
    if run_dir is not None:
        report = sim.simulate_runs(run_dir, data_dir, settings, cfg, model_file or sim.FOLD_MODEL, frames, threshold == "pooled",
                                   only_folds, dermnet_cache)
    else:
        report = sim.simulate_folder(data_dir, model_path or default_model(), settings, cfg, frames)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    if pictures and frames:
        save_tiles(frames, pictures)
    click.echo(json.dumps(report["summary"], indent=2))


def save_tiles(frames: list[np.ndarray], path: Path) -> None:
    """The first four simulated frames, two by two, as one picture."""
    tiles = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames[:4]]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 2)
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[i:i + 2]) for i in range(0, len(tiles), 2)]))
