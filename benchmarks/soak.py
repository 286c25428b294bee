"""Soak: an hour of kiosk time with every output on, to show memory, descriptors and threads stay flat.

The kiosk runs as `mpox kiosk run` builds it (`open_outputs`: web pages and metrics, the MQTT
uplink with its outbox) on bench_pipeline's source: the demo's scripted visits at 1280x720,
replayed as fast as the loop takes them, with decision and presence timings shortened the
same way so visits keep ending in screenings. A real Mosquitto (TLS, password) takes the
uplink; a client keeps the kiosk screen's event stream and live picture open and polls the
status, health and metrics once a second, as a kiosk browser and a Prometheus scraper would.

An hour of kiosk time is 54,000 frames of a 15 fps camera. Samples every 2,000 frames: RSS,
open file descriptors, threads. "Flat" compares the last sample with the first after the
warm-up (the first 10,000 frames: caches, pools and the outbox's first pages fill).

    python benchmarks/soak.py [--frames 54000] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pipeline import QUEUE_SIZE, SyntheticSource, paced_kiosk, rss_mb
from machine import cpu_model

from edge.config import load_config
from edge.events import Stopped
from edge.outputs import open_outputs
from tests.fleet.conftest import Broker

SAMPLE_EVERY = 2_000
WARMUP = 10_000


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


class Sampler:
    """An output that samples the process every SAMPLE_EVERY frames (on the loop's thread),
    and sends the browsing client home when the kiosk stops (before the pages close)."""

    def __init__(self, stop: threading.Event) -> None:
        self.samples: list[dict] = []
        self.stop = stop

    def on_event(self, event) -> None:
        if isinstance(event, Stopped):
            self.stop.set()

    def on_status(self, status) -> None:
        if status.frames % SAMPLE_EVERY == 0 and (not self.samples or self.samples[-1]["frames"] != status.frames):
            self.samples.append({"frames": status.frames, "screenings": status.screenings, "rss_mb": rss_mb(),
                                 "fds": open_fds(), "threads": threads()})


def browse(base: str, stop: threading.Event, counts: dict) -> None:
    """The kiosk screen's streams held open, and status, health and metrics polled each second."""
    def hold(path: str) -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    while not stop.is_set() and r.read1(65536):  # what has arrived, as a browser takes it
                        counts[path] = counts.get(path, 0) + 1
            except (OSError, http.client.HTTPException):
                time.sleep(0.5)

    for path in ("/api/events", "/preview.mjpg"):
        threading.Thread(target=hold, args=(path,), daemon=True).start()
    while not stop.wait(1.0):
        for path in ("/api/status", "/healthz", "/metrics"):
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    r.read()
                    counts[path] = counts.get(path, 0) + 1
            except (OSError, http.client.HTTPException) as e:
                if stop.is_set():
                    return
                counts["errors"] = counts.get("errors", 0) + 1
                counts["last_error"] = str(e)


def run(frames: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    broker = Broker(folder / "broker")
    broker.start()
    (folder / "kiosk.yaml").write_text(
        f"kiosk_id: soak\nstate_dir: {folder / 'state'}\nqueue_size: {QUEUE_SIZE}\n"
        "decision:\n  result_hold_s: 0.3\n  leave_after_s: 0.3\n  settle_s: 0.02\npresence:\n  learn_s: 0.1\n  idle_fps: 0\n"
        "web:\n  port: 0\n  consent: false\n" + broker.fleet_yaml(site="soak"))  # nobody taps "I agree" in a soak
    cfg = load_config(folder / "kiosk.yaml")
    kiosk = paced_kiosk(cfg, SyntheticSource())
    outputs = open_outputs(cfg, kiosk)
    web = next((o for o in outputs if getattr(o, "url", None)), None)
    if web is None:
        raise SystemExit("the web output did not start")
    stop, counts = threading.Event(), {}
    sampler = Sampler(stop)
    kiosk.outputs.subscribe(sampler)
    client = threading.Thread(target=browse, args=(web.url, stop, counts), daemon=True)
    client.start()
    t0 = time.perf_counter()
    try:
        status = kiosk.run(max_frames=frames)
    finally:
        stop.set()
        broker.stop()
    wall = time.perf_counter() - t0
    db = sqlite3.connect(kiosk.store.path)
    outbox = dict(db.execute("SELECT sent_utc IS NOT NULL, COUNT(*) FROM outbox GROUP BY 1").fetchall())
    db.close()
    after = [s for s in sampler.samples if s["frames"] >= WARMUP]
    first, last = after[0], after[-1]
    return {
        "frames": status.frames, "kiosk_hours": status.frames / 15 / 3600, "seconds": wall, "fps": status.frames / wall,
        "screenings": status.screenings, "dropped": status.dropped, "output_failures": kiosk.outputs.failures,
        "audit_rows_written": kiosk.store.written, "requests": counts,
        "outbox": {"sent": outbox.get(1, 0), "unsent": outbox.get(0, 0)},
        "rss_mb": {"first": first["rss_mb"], "last": last["rss_mb"], "max": max(s["rss_mb"] for s in after),
                   "growth": last["rss_mb"] - first["rss_mb"]},
        "fds": {"first": first["fds"], "last": last["fds"], "max": max(s["fds"] for s in after)},
        "threads": {"first": first["threads"], "last": last["threads"], "max": max(s["threads"] for s in after)},
        "samples": sampler.samples, "cpu": cpu_model(), "cores": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=54_000, help="frames to run (54,000: an hour of a 15 fps camera)")
    ap.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = ap.parse_args()
    r = run(args.frames)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"{r['frames']} frames ({r['kiosk_hours']:.2f} h of kiosk time) in {r['seconds']:.0f} s, {r['screenings']} screenings")
    print(f"fleet outbox: {r['outbox']['sent']} sent, {r['outbox']['unsent']} unsent; requests {r['requests']}")
    print(f"RSS {r['rss_mb']['first']:.1f} -> {r['rss_mb']['last']:.1f} MB (max {r['rss_mb']['max']:.1f}); "
          f"fds {r['fds']['first']} -> {r['fds']['last']}; threads {r['threads']['first']} -> {r['threads']['last']}")


if __name__ == "__main__":
    main()
