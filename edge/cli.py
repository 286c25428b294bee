"""`mpox`: the one command line of the project, and the kiosk's own commands.

The kiosk's commands live here. Every other package registers its own (authority/commands.py,
research/commands.py, training/commands.py, quantization/commands.py) through the entry point
group `mpox.commands` in pyproject.toml: a list of edge.commands.Registered with a static help
line, so `mpox --help` lists them without importing them, and a kiosk install (no torch) can
show them. A command's module is imported only when it is run.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from edge import __version__
from edge.commands import LazyGroup, Registered, UserError, default_model, kiosk_config, user_errors

log = logging.getLogger(__name__)
ENTRY_POINTS = "mpox.commands"


@click.group(cls=LazyGroup, invoke_without_command=True)
@click.version_option(__version__, prog_name="mpox")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Mpox screening kiosk: training, quantization and the edge runtime."""
    if ctx.invoked_subcommand is None:  # bare `mpox`: what it can do
        click.echo(ctx.get_help())
        return
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def register(commands: list[Registered]) -> None:
    """Add other packages' commands to `mpox` (or to one of its groups, e.g. `models`)."""
    for r in commands:
        *group_path, name = r.path.split()
        group = main
        for word in group_path:
            group = group.commands[word]
        group.registered[name] = r


@main.command()
def info() -> None:
    """Show what this installation runs with."""
    import cv2
    import openvino

    from edge import preprocess

    click.echo(f"mpox {__version__}")
    click.echo(f"preprocessing backend: {preprocess.BACKEND}")
    click.echo(f"openvino {openvino.__version__}, opencv {cv2.__version__}")


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
@user_errors()
def classify(paths: tuple[Path, ...], model_path: Path | None, fmt: str, device: str, precision: str | None) -> None:
    """Classify image files or folders with an exported model (OpenVINO only)."""
    from edge.engine import Engine
    from edge.errors import KioskError
    from edge.images import judgeable, read_image

    engine = Engine(model_path or default_model(), device, {"INFERENCE_PRECISION_HINT": precision} if precision else None)
    labels = engine.info.labels
    files = image_paths(paths)
    if not files:
        raise UserError("no image files found in " + ", ".join(map(str, paths)))
    if fmt == "table":
        click.echo(f"{'label':<12} " + " ".join(f"{name[:10]:>10}" for name in labels) + "  path")
    failed = 0
    for f in files:
        try:
            probs = engine.classify_frame(judgeable(read_image(f), str(f)))
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
        raise UserError(f"{failed} of {len(files)} images could not be read or judged")


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

    cfg = kiosk_config(config_path)
    signalled = threading.Event()
    while run_kiosk_once(cfg, view, max_frames, max_screenings, signalled) and not signalled.is_set():
        # A model was installed or rolled back: start again on the model now current. By hand,
        # in this process. Under systemd, by exec'ing this same command: the process (its PID,
        # systemd's MainPID) stays, so systemd sees no exit and no start. An exit for systemd to
        # restart (Restart=) would count against StartLimitBurst= like a crash does, and six model
        # announcements in ten minutes would leave the kiosk failed for good. The notify output
        # said RELOADING=1 (not STOPPING=1); the new image says READY=1 once its first frame is
        # through. exec, not another round of this loop: the old model's memory and threads go
        # with the old image, and the start is the one a boot makes (engine_for_start's trial count).
        if os.environ.get("NOTIFY_SOCKET"):
            restart_by_exec()


def restart_by_exec() -> None:
    """Replace this process with `mpox kiosk run` as it was started (never returns); if the
    exec fails, exit EXIT_RESTART for Restart=on-failure (that start then counts)."""
    import os

    from edge.outputs.rollout import EXIT_RESTART

    argv = [sys.executable, *sys.orig_argv[1:]]
    click.echo("the current model changed: the kiosk starts again on it in this process (exec)", err=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        click.echo(f"cannot exec {argv[0]} ({e.strerror}): exiting with status {EXIT_RESTART} for systemd to restart the "
                   "kiosk", err=True)
        sys.exit(EXIT_RESTART)


@user_errors()
def start_kiosk(cfg):
    from edge.kiosk import Kiosk
    from edge.models import engine_for_start

    return Kiosk(cfg, engine=engine_for_start(cfg))


def run_kiosk_once(cfg, view: bool | None, max_frames: int | None, max_screenings: int | None, signalled) -> bool:
    """One kiosk from start to stop; True when it stopped to start again on another model
    (edge/outputs/rollout.py), not for a signal or a limit."""
    import signal

    from edge.outputs import open_outputs

    k = start_kiosk(cfg)

    def stop(*_) -> None:
        signalled.set()
        k.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    if signalled.is_set():  # a signal while this kiosk was starting
        k.stop()
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
    """Check a config file; print the settings it gives (secrets masked)."""
    from edge.config import masked

    cfg = kiosk_config(path)
    if not cfg.model.path.is_file():  # valid as a value, fatal at start: say so now
        raise UserError(f"{path}: model.path: {cfg.model.path} not found")
    if cfg.rollout.public_key is not None and not cfg.rollout.public_key.is_file():
        raise UserError(f"{path}: rollout.public_key: {cfg.rollout.public_key} not found")
    click.echo(json.dumps(masked(cfg), indent=2))
    click.echo(f"{path}: OK", err=True)


@kiosk.command("example-config")
def kiosk_example_config() -> None:
    """Print the example config (deploy/kiosk.example.yaml): every key, its default and meaning."""
    from edge.config_example import example_config

    click.echo(example_config(), nl=False)


@main.group(cls=LazyGroup)
def models() -> None:
    """Signed model bundles: make them (the authority) and install them (a kiosk)."""


@models.command("install")
@click.argument("bundle")
@click.option("--config", "config_path", type=click.Path(path_type=Path))
@click.option("--sha256", help="The bundle file's announced sha256: refuse any other.")
@click.option("--version", "version", help="The model's announced version: refuse any other.")
@click.option("--force", is_flag=True, help="Install a bundle this kiosk rolled back before.")
@click.option("--allow-downgrade", is_flag=True, help="Install a model older than the one running.")
@click.option("--allow-unprobed", is_flag=True,
              help="Install a bundle made before bundles carried probe pictures (nothing then checks what its model answers).")
@user_errors(OSError, prefix="refused: ")
def models_install(bundle: str, config_path: Path | None, sha256: str | None, version: str | None, force: bool,
                   allow_downgrade: bool, allow_unprobed: bool) -> None:
    """Verify, check and install BUNDLE (a file or an http(s) URL of the authority's server);
    a running kiosk switches to it between screenings."""
    from edge.rollout import install_bundle

    cfg = kiosk_config(config_path)
    click.echo(install_bundle(bundle, cfg, sha256=sha256, version=version, force=force,
                              allow_downgrade=allow_downgrade, allow_unprobed=allow_unprobed).line())


@models.command("status")
@click.option("--config", "config_path", type=click.Path(path_type=Path))
@user_errors()
def models_status(config_path: Path | None) -> None:
    """Which model runs, what a rollback returns to, and what was rolled back."""
    from edge.rollout import describe

    for line in describe(kiosk_config(config_path)):
        click.echo(line)


@models.command("rollback")
@click.option("--config", "config_path", type=click.Path(path_type=Path))
@user_errors(OSError)
def models_rollback(config_path: Path | None) -> None:
    """Return to the previous model (or the packaged one); a running kiosk switches when idle."""
    from edge.rollout import rollback_by_hand

    click.echo(f"rolled back: the kiosk now runs {rollback_by_hand(kiosk_config(config_path))}")


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


def _register_installed() -> None:
    """Every package's commands, as their entry points list them (pyproject.toml)."""
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            register(ep.load())
        except (ImportError, AttributeError, KeyError) as e:  # a package half installed: its commands are missing, not mpox
            log.debug("commands of %s not registered: %s", ep.name, e)


_register_installed()

if __name__ == "__main__":
    main()
