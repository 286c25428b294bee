"""The health authority's commands: `mpox fleet ...` (its view of the kiosks over MQTT) and
`mpox models keygen|bundle` (signing models). Registered in authority/commands.py."""

from __future__ import annotations

import json
from pathlib import Path

import click

from authority import signing
from edge.announce import AnnouncementError
from edge.commands import UserError, kiosk_config, user_errors
from edge.config import ModelConfig
from edge.models import probe_model


@click.group()
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
@user_errors()
def fleet_tail(config_path, host, port, tls, ca_file, username, site, raw) -> None:
    """Print what every kiosk reports, as it arrives (Ctrl-C stops)."""
    from authority.fleetview import tail

    stop = stop_on_signals()
    tail(fleet_broker(config_path, host, port, tls, ca_file, username), site, lambda line: click.echo(line), stop, raw)


@fleet.command("collect")
@broker_options
@click.option("--db", "db_path", type=click.Path(path_type=Path), default=Path("fleet.sqlite"), show_default=True,
              help="The collector's SQLite file (what `mpox fleet summary` reads).")
@click.option("--client-id", default=None, help="The broker session's name [mpox-collector-<host name>].")
@user_errors()
def fleet_collect(config_path, host, port, tls, ca_file, username, db_path, client_id) -> None:
    """Keep every kiosk's screenings, events, status and health in a SQLite file (a service at the district office)."""
    import socket

    from authority.fleetview import collect

    stop = stop_on_signals()
    kept = collect(fleet_broker(config_path, host, port, tls, ca_file, username), db_path, stop,
                   client_id or f"mpox-collector-{socket.gethostname()}")
    click.echo(f"{kept.stored} messages kept in {db_path}; {kept.bad} skipped")


@fleet.command("announce")
@broker_options
@click.option("--site", required=True, help="The site whose kiosks get it: topic mpox/<site>/model.")
@click.option("--url", required=True, help="The signed bundle on the authority's own http(s) server.")
@click.option("--version", "version", required=True, help="The model's version, as `mpox models bundle` printed it.")
@click.option("--sha256", required=True, help="The bundle file's sha256, as `mpox models bundle` printed it.")
@click.option("--allow-downgrade", is_flag=True, help="Kiosks install it even when it is older than the model they run.")
@user_errors(AnnouncementError)
def fleet_announce(config_path, host, port, tls, ca_file, username, site, url, version, sha256, allow_downgrade) -> None:
    """Announce a signed bundle to a site's kiosks (retained: a kiosk off now gets it when it connects)."""
    from authority.fleetview import announce
    from edge.announce import Announcement
    from edge.config import TOPIC_UNSAFE

    if TOPIC_UNSAFE & set(site):
        raise UserError("--site must not contain '/', '+' or '#' (it is part of the topic)")
    topic = announce(fleet_broker(config_path, host, port, tls, ca_file, username), site,
                     Announcement(url, version, sha256, allow_downgrade))
    click.echo(f"announced model {version} on {topic} (retained): each kiosk of {site} with rollout.public_key installs it "
               "and reports it on its status topic")


@fleet.command("summary")
@click.option("--db", "db_path", type=click.Path(path_type=Path), default=Path("fleet.sqlite"), show_default=True,
              help="The collector's SQLite file (`mpox fleet collect`).")
@click.option("--since", "window", default="24h", show_default=True, help="Time window: 30m, 24h, 7d...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors(ValueError)
def fleet_summary(db_path: Path, window: str, as_json: bool) -> None:
    """Screenings by site and outcome over a time window, and each kiosk's state: the morning view."""
    import dataclasses

    from authority.fleetview import format_summary, parse_window, summarize

    s = summarize(db_path, parse_window(window))
    if as_json:
        click.echo(json.dumps({"since_utc": s.since_utc, "counts": {site: {o.value: n for o, n in c.items()} for site, c in s.counts.items()},
                               "kiosks": [dataclasses.asdict(k) for k in s.kiosks]},
                              indent=2))
    else:
        click.echo(format_summary(s))


@click.command("keygen")
@click.option("--private", "private", type=click.Path(path_type=Path), default=Path("rollout-signing.pem"), show_default=True,
              help="The signing key: keep it off the kiosks, with the people who approve models.")
@click.option("--public", "public", type=click.Path(path_type=Path), default=Path("rollout-signing.pub.pem"), show_default=True,
              help="The public key: every kiosk's rollout.public_key.")
@user_errors(OSError)
def models_keygen(private: Path, public: Path) -> None:
    """Make an ed25519 key pair for signing model bundles."""
    signing.generate_keys(private, public)
    click.echo(f"signing key {private} (owner-only), public key {public}: set rollout.public_key to it on each kiosk")


@click.command("bundle")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path), help="The authority's private key (PEM).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The bundle to write (.tar).")
@click.option("--probe", "probe_dir", type=click.Path(path_type=Path),
              help="Labelled pictures for the probe set, one folder per label (ImageFolder: DIR/Monkeypox/*.jpg); "
                   "default: the kiosk's bundled demo pictures.")
@click.option("--probe-per-class", type=click.IntRange(1, 16), default=signing.PROBE_PER_CLASS, show_default=True,
              help="Pictures of each label the bundle carries, at most.")
@click.option("--probe-margin", type=click.FloatRange(0, 0.5), default=signing.PROBE_MARGIN, show_default=True,
              help="Share of the probe pictures a kiosk may answer otherwise than measured here.")
@user_errors(OSError)
def models_bundle(model: Path, key_path: Path, out: Path, probe_dir: Path | None, probe_per_class: int, probe_margin: float) -> None:
    """Sign MODEL.xml (with its .bin) and a probe set into a bundle, after the same model check a kiosk runs."""
    key = signing.load_private_key(key_path)
    engine = probe_model(ModelConfig(path=model, verify_checksum=False))
    pictures = signing.image_folder(probe_dir) if probe_dir else signing.demo_pictures()
    probe = signing.measure_probe_set(engine, pictures, probe_margin, probe_per_class)
    digest = signing.write_bundle(model, key, out, probe)
    click.echo(json.dumps({"bundle": str(out), "name": engine.info.name, "version": engine.info.version, "sha256": digest,
                           "probe": probe.line()}))
