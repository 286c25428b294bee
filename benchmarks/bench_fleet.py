"""Many kiosks reporting to one broker at once: events/s through a real Mosquitto and the
end-to-end latency of a screening, from its audit-log commit to a subscriber.

Each simulated kiosk is the real store-and-forward path without camera or model: its own
AuditLog (SQLite, outbox on) in its own state folder, a thread that records screenings
through the audit output, and a FleetUplink (its thread, its SQLite connection, paho's
network thread) connected over TLS with a password, as `mpox kiosk run` wires them. One
subscriber (a persistent QoS 1 session, as `mpox fleet collect`) takes mpox/+/+/screening and
notes when each uuid arrives; all clocks are this process's monotonic clock.

The broker is started as in tests/fleet (a throwaway CA and password file, loopback port).

    python benchmarks/bench_fleet.py [--kiosks 100] [--screenings 20] [--interval 0] [--no-tls] [--json]

--interval 0: every kiosk records its screenings as fast as it can (throughput; latency then
includes queueing); --interval S: one screening every S seconds per kiosk (latency at a
steady load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model

from edge.config import load_config
from edge.decision import Outcome, Screening
from edge.events import ModelFacts, Publisher, ScreeningDone
from edge.outputs.audit import AuditOutput
from edge.outputs.fleet import FleetUplink
from edge.store import AuditLog, ModelStamp
from tests import last_wins
from tests.fleet.conftest import PASSWORD, USER, Broker

MODEL = ModelFacts("fast-mpoxnet", "2.1.0", "ab" * 32, "FP32", "CPU", 0.3)


class SimKiosk(threading.Thread):
    """One kiosk's loop thread: it opens its audit log (SQLite objects stay on their thread),
    records its screenings when `start` is set, and closes when `finish` is set."""

    def __init__(self, folder: Path, broker: Broker, n: int, count: int, interval: float, recorded: dict[str, float],
                 start: threading.Event, finish: threading.Event) -> None:
        super().__init__(daemon=True)
        self.folder, self.broker, self.n, self.count, self.interval = folder, broker, n, count, interval
        self.recorded, self.start_event, self.finish = recorded, start, finish
        self.ready, self.recorded_all = threading.Event(), threading.Event()
        self.uplink: FleetUplink | None = None

    def run(self) -> None:
        self.folder.mkdir(parents=True)
        cfg_file = self.folder / "kiosk.yaml"
        cfg_file.write_text(last_wins(f"kiosk_id: k{self.n:03d}\nstate_dir: state\n"  # health_interval_s given twice
                                      + self.broker.fleet_yaml(site=f"site-{self.n % 10}", extra="  health_interval_s: 60\n")))
        cfg = load_config(cfg_file)
        store = AuditLog(cfg.state_dir, cfg.store, cfg.kiosk_id, ModelStamp(MODEL.name, MODEL.version, MODEL.sha256), outbox=True)
        self.uplink = FleetUplink(cfg.fleet, cfg.kiosk_id, store.path, cfg.state_dir, MODEL)
        outputs = Publisher()
        outputs.subscribe(AuditOutput(store))
        outputs.subscribe(self.uplink)
        self.ready.set()
        self.start_event.wait()
        for i in range(self.count):
            s = Screening(id=str(uuid.uuid4()), started=0.0, finished=2.0, outcome=list(Outcome)[i % 4], label="Normal",
                          probabilities={"Monkeypox": 0.1, "Normal": 0.9}, frames=8, agreement=1.0, quality={})
            t = time.monotonic()
            outputs.event(ScreeningDone(time.time(), s))  # commits the row and its outbox entry, wakes the uplink
            self.recorded[s.id] = t
            if self.interval:
                time.sleep(self.interval)
        self.recorded_all.set()
        self.finish.wait()
        outputs.close()
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiosks", type=int, default=100)
    ap.add_argument("--screenings", type=int, default=20, help="per kiosk")
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between a kiosk's screenings (0: a burst)")
    ap.add_argument("--no-tls", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker", tls=not args.no_tls)
        broker.start()
        arrived: dict[str, float] = {}
        done = threading.Event()
        total = args.kiosks * args.screenings

        def on_message(client, userdata, msg) -> None:
            arrived.setdefault(json.loads(msg.payload)["uuid"], time.monotonic())
            if len(arrived) >= total:
                done.set()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-collector", clean_session=False)
        sub.username_pw_set(USER, PASSWORD)
        if broker.tls:
            sub.tls_set(ca_certs=str(broker.ca))
        subscribed = threading.Event()
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("mpox/+/+/screening", qos=1)
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        subscribed.wait(10)

        t0 = time.monotonic()
        recorded: dict[str, float] = {}
        start, finish = threading.Event(), threading.Event()
        kiosks = [SimKiosk(Path(tmp) / f"k{n:03d}", broker, n, args.screenings, args.interval, recorded, start, finish)
                  for n in range(args.kiosks)]
        for k in kiosks:
            k.start()
        for k in kiosks:
            k.ready.wait(60)
        while sum(k.uplink.connected.is_set() for k in kiosks) < args.kiosks and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        connect_s = time.monotonic() - t0
        t_start = time.monotonic()
        start.set()
        for k in kiosks:
            k.recorded_all.wait()
        t_recorded = time.monotonic()
        done.wait(120)
        t_end = max(arrived.values()) if arrived else time.monotonic()
        finish.set()
        for k in kiosks:
            k.join(30)
        sub.disconnect()
        sub.loop_stop()
        broker.stop()

    latencies = sorted((arrived[i] - recorded[i]) * 1000 for i in recorded if i in arrived)
    result = {
        "kiosks": args.kiosks, "screenings_per_kiosk": args.screenings, "interval_s": args.interval, "tls": not args.no_tls,
        "cpu": cpu_model(), "connect_all_s": round(connect_s, 2), "sent": total, "arrived": len(arrived),
        "recording_s": round(t_recorded - t_start, 2), "events_per_s": round(len(arrived) / (t_end - t_start), 1),
        "latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p99": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1) if latencies else None,
        "latency_ms_max": round(latencies[-1], 1) if latencies else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
