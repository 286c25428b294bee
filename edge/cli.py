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
@click.option("--precision", type=click.Choice(["f32", "f16", "bf16"]), default=None,
              help="Inference precision hint (as model.inference_precision); default: the device's own.")
def classify(paths: tuple[Path, ...], model_path: Path | None, fmt: str, device: str, precision: str | None) -> None:
    """Classify image files or folders with an exported model (OpenVINO only)."""
    from edge.images import read_image
    from edge.engine import Engine
    from edge.errors import KioskError

    try:
        engine = Engine(model_path or default_model(), device, {"INFERENCE_PRECISION_HINT": precision} if precision else None)
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
    import os
    import threading

    from edge.outputs.rollout import EXIT_RESTART

    cfg = kiosk_config(config_path)
    signalled = threading.Event()
    while run_kiosk_once(cfg, view, max_frames, max_screenings, signalled) and not signalled.is_set():
        # A model was installed or rolled back: start again on the model now current. Under
        # systemd the closed notify output has said STOPPING=1, so the service manager must do it.
        if os.environ.get("NOTIFY_SOCKET"):
            click.echo(f"the current model changed: exiting with status {EXIT_RESTART} for systemd to start the kiosk on it",
                       err=True)
            sys.exit(EXIT_RESTART)


def run_kiosk_once(cfg, view: bool | None, max_frames: int | None, max_screenings: int | None, signalled) -> bool:
    """One kiosk from start to stop; True when it stopped to start again on another model
    (edge/outputs/rollout.py), not for a signal or a limit."""
    import signal

    from edge.errors import KioskError
    from edge.kiosk import Kiosk
    from edge.rollout import engine_for_start

    try:
        k = Kiosk(cfg, engine=engine_for_start(cfg))
    except KioskError as e:
        raise UserError(str(e)) from None

    def stop(*_) -> None:
        signalled.set()
        k.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    if signalled.is_set():  # a signal while this kiosk was starting
        k.stop()
    from edge.outputs import open_outputs

    outputs = open_outputs(cfg, k)
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
    return any(getattr(o, "restart", False) for o in outputs)


@kiosk.command("validate-config")
@click.argument("path", type=click.Path(path_type=Path))
def kiosk_validate_config(path: Path) -> None:
    """Check a config file; print the settings it gives."""
    cfg = kiosk_config(path)
    if not cfg.model.path.is_file():  # valid as a value, fatal at start: say so now
        raise UserError(f"{path}: model.path: {cfg.model.path} not found")
    if cfg.rollout.public_key is not None and not cfg.rollout.public_key.is_file():
        raise UserError(f"{path}: rollout.public_key: {cfg.rollout.public_key} not found")
    click.echo(cfg.model_dump_json(indent=2))
    click.echo(f"{path}: OK", err=True)


@main.group()
def fleet() -> None:
    """The health authority's view of its kiosks over MQTT: tail, collect, summary, announce."""


def broker_options(f):
    """The broker to reach: a kiosk config's fleet section (--config) and/or these options;
    the password from MPOX_MQTT_PASSWORD, the systemd credential mqtt-password or the config."""
    for option in reversed([
        click.option("--config", "config_path", type=click.Path(path_type=Path), help="A YAML whose fleet section names the broker."),
        click.option("--host", help="Broker host (overrides the config)."),
        click.option("--port", type=int, help="Broker port [8883]."),
        click.option("--tls/--no-tls", default=None, help="TLS (default: on)."),
        click.option("--ca-file", type=click.Path(path_type=Path), help="The broker's CA certificate (PEM)."),
        click.option("--username", help="Login name."),
    ]):
        f = option(f)
    return f


def fleet_broker(config_path: Path | None, host: str | None, port: int | None, tls: bool | None, ca_file: Path | None,
                 username: str | None):
    import os

    from edge.config import FleetConfig

    base = kiosk_config(config_path).fleet if config_path else FleetConfig()
    given = {"host": host, "port": port, "tls": tls, "ca_file": ca_file, "username": username,
             "password": os.environ.get("MPOX_MQTT_PASSWORD")}
    cfg = base.model_copy(update={k: v for k, v in given.items() if v is not None})
    if not cfg.host:
        raise UserError("no broker: give --host, or a --config whose fleet section names one")
    return cfg


def stop_on_signals():
    """A threading.Event set by SIGTERM or SIGINT: how a long-running command is told to finish."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@fleet.command("tail")
@broker_options
@click.option("--site", help="Only this site's kiosks (default: every site).")
@click.option("--raw", is_flag=True, help="Print topic and JSON as received.")
def fleet_tail(config_path, host, port, tls, ca_file, username, site, raw) -> None:
    """Print what every kiosk reports, as it arrives (Ctrl-C stops)."""
    from edge.fleetview import FleetError, tail

    stop = stop_on_signals()
    try:
        tail(fleet_broker(config_path, host, port, tls, ca_file, username), site, lambda line: click.echo(line), stop, raw)
    except FleetError as e:
        raise UserError(str(e)) from None


@fleet.command("collect")
@broker_options
@click.option("--db", "db_path", type=click.Path(path_type=Path), default=Path("fleet.sqlite"), show_default=True,
              help="The collector's SQLite file (what `mpox fleet summary` reads).")
@click.option("--client-id", default=None, help="The broker session's name [mpox-collector-<host name>].")
def fleet_collect(config_path, host, port, tls, ca_file, username, db_path, client_id) -> None:
    """Keep every kiosk's screenings, events, status and health in a SQLite file (a service at the district office)."""
    import socket

    from edge.fleetview import FleetError, collect

    stop = stop_on_signals()
    try:
        kept = collect(fleet_broker(config_path, host, port, tls, ca_file, username), db_path, stop,
                       client_id or f"mpox-collector-{socket.gethostname()}")
    except FleetError as e:
        raise UserError(str(e)) from None
    click.echo(f"{kept.stored} messages kept in {db_path}; {kept.bad} skipped")


@fleet.command("announce")
@broker_options
@click.option("--site", required=True, help="The site whose kiosks get it: topic mpox/<site>/model.")
@click.option("--url", required=True, help="The signed bundle on the authority's own http(s) server.")
@click.option("--version", "version", required=True, help="The model's version, as `mpox models bundle` printed it.")
@click.option("--sha256", required=True, help="The bundle file's sha256, as `mpox models bundle` printed it.")
def fleet_announce(config_path, host, port, tls, ca_file, username, site, url, version, sha256) -> None:
    """Announce a signed bundle to a site's kiosks (retained: a kiosk off now gets it when it connects)."""
    from edge.announce import Announcement, AnnouncementError
    from edge.config import TOPIC_UNSAFE
    from edge.fleetview import FleetError, announce

    if TOPIC_UNSAFE & set(site):
        raise UserError("--site must not contain '/', '+' or '#' (it is part of the topic)")
    try:
        announcement = Announcement(url, version, sha256)
        topic = announce(fleet_broker(config_path, host, port, tls, ca_file, username), site, announcement)
    except (AnnouncementError, FleetError) as e:
        raise UserError(str(e)) from None
    click.echo(f"announced model {version} on {topic} (retained): each kiosk of {site} with rollout.public_key installs it "
               "and reports it on its status topic")


@fleet.command("summary")
@click.option("--db", "db_path", type=click.Path(path_type=Path), default=Path("fleet.sqlite"), show_default=True,
              help="The collector's SQLite file (`mpox fleet collect`).")
@click.option("--since", "window", default="24h", show_default=True, help="Time window: 30m, 24h, 7d...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def fleet_summary(db_path: Path, window: str, as_json: bool) -> None:
    """Screenings by site and outcome over a time window, and each kiosk's state: the morning view."""
    from edge.fleetview import FleetError, format_summary, parse_window, summarize

    try:
        s = summarize(db_path, parse_window(window))
    except (FleetError, ValueError) as e:
        raise UserError(str(e)) from None
    if as_json:
        click.echo(json.dumps({"since_utc": s.since_utc, "counts": {site: {o.value: n for o, n in c.items()} for site, c in s.counts.items()},
                               "kiosks": [dict(zip(("site", "kiosk", "status", "model_version", "last_heard_utc"), k)) for k in s.kiosks]},
                              indent=2))
    else:
        click.echo(format_summary(s))


@main.group()
def models() -> None:
    """Signed model bundles: make them (the authority) and install them (a kiosk)."""


@models.command("keygen")
@click.option("--private", "private", type=click.Path(path_type=Path), default=Path("rollout-signing.pem"), show_default=True,
              help="The signing key: keep it off the kiosks, with the people who approve models.")
@click.option("--public", "public", type=click.Path(path_type=Path), default=Path("rollout-signing.pub.pem"), show_default=True,
              help="The public key: every kiosk's rollout.public_key.")
def models_keygen(private: Path, public: Path) -> None:
    """Make an ed25519 key pair for signing model bundles."""
    from edge.bundle import generate_keys
    from edge.errors import KioskError

    try:
        generate_keys(private, public)
    except (KioskError, OSError) as e:
        raise UserError(str(e)) from None
    click.echo(f"signing key {private} (owner-only), public key {public}: set rollout.public_key to it on each kiosk")


@models.command("bundle")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path), help="The authority's private key (PEM).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The bundle to write (.tar).")
def models_bundle(model: Path, key_path: Path, out: Path) -> None:
    """Sign MODEL.xml (with its .bin) into a bundle, after the same model check a kiosk runs."""
    from edge.bundle import load_private_key, write_bundle
    from edge.check import probe_model
    from edge.config import ModelConfig
    from edge.errors import KioskError

    try:
        key = load_private_key(key_path)
        info = probe_model(ModelConfig(path=model, verify_checksum=False)).info
        digest = write_bundle(model, key, out)
    except (KioskError, OSError) as e:
        raise UserError(str(e)) from None
    click.echo(json.dumps({"bundle": str(out), "name": info.name, "version": info.version, "sha256": digest}))


@models.command("install")
@click.argument("bundle")
@click.option("--config", "config_path", type=click.Path(path_type=Path))
@click.option("--sha256", help="The bundle file's announced sha256: refuse any other.")
@click.option("--version", "version", help="The model's announced version: refuse any other.")
@click.option("--force", is_flag=True, help="Install a bundle this kiosk rolled back before.")
def models_install(bundle: str, config_path: Path | None, sha256: str | None, version: str | None, force: bool) -> None:
    """Verify, check and install BUNDLE (a file or an http(s) URL of the authority's server);
    a running kiosk switches to it between screenings."""
    from edge.errors import KioskError
    from edge.rollout import install_bundle

    cfg = kiosk_config(config_path)
    try:
        result = install_bundle(bundle, cfg, sha256=sha256, version=version, force=force)
    except (KioskError, OSError) as e:
        raise UserError(f"refused: {e}") from None
    click.echo(result.line())


@models.command("status")
@click.option("--config", "config_path", type=click.Path(path_type=Path))
def models_status(config_path: Path | None) -> None:
    """Which model runs, what a rollback returns to, and what was rolled back."""
    from edge.errors import KioskError
    from edge.rollout import describe

    try:
        for line in describe(kiosk_config(config_path)):
            click.echo(line)
    except KioskError as e:
        raise UserError(str(e)) from None


@models.command("rollback")
@click.option("--config", "config_path", type=click.Path(path_type=Path))
def models_rollback(config_path: Path | None) -> None:
    """Return to the previous model (or the packaged one); a running kiosk switches when idle."""
    from edge.errors import KioskError
    from edge.rollout import rollback_by_hand

    try:
        now = rollback_by_hand(kiosk_config(config_path))
    except (KioskError, OSError) as e:
        raise UserError(str(e)) from None
    click.echo(f"rolled back: the kiosk now runs {now}")


@main.group()
def web() -> None:
    """The kiosk's web pages (served by `mpox kiosk run`)."""


@web.command("hash-password")
@click.password_option("--password", prompt="Staff password", help="Asked for (twice) when not given.")
def web_hash_password(password: str) -> None:
    """Print the argon2 hash of a staff password, for web.staff_password_hash or the systemd
    credential staff-password-hash."""
    from edge.web.auth import hash_password

    if len(password) < 8:
        raise UserError("use at least 8 characters")
    click.echo(hash_password(password))


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
@click.option("--lead-in", "lead_in_s", type=click.FloatRange(min=0.0),
              help="Seconds of empty room before each approach [drawn per visit: 1.5-3].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Kiosk config whose gate and decision settings to use.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the report and every session as JSON.")
@click.option("--pictures", type=click.Path(path_type=Path), help="Save simulated frames with the box and the classified region (PNG).")
@click.option("--fold", "only_folds", type=int, multiple=True, help="With --runs: only these folds.")
@click.option("--threshold", type=click.Choice(["pooled", "own"]), default="pooled", show_default=True,
              help="With --runs: each fold at the median of the other folds' mpox thresholds (as shipped), or at its own.")
@click.option("--view-check", type=int, help="Instead: argmax accuracy on N photos, on the kiosk's crops of them, and with camera faults.")
@click.option("--presence", is_flag=True, help="Instead: does every photo of --data count as present when it fills the box?")
def simulate(run_dir, data_dir, model_path, model_file, sessions, empty, seed, lead_in_s, config_path, out, pictures,
             only_folds, threshold, view_check, presence) -> None:
    """Whole screening sessions from photos, played to the real kiosk loop."""
    from dataclasses import replace

    import numpy as np

    from edge import simulate as sim
    from edge.errors import KioskError

    cfg = kiosk_config(config_path)
    given = {k: v for k, v in (("sessions", sessions), ("empty", empty), ("seed", seed), ("lead_in_s", lead_in_s))
             if v is not None}
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
