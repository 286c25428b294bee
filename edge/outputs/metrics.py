"""Prometheus metrics as an output, in their own CollectorRegistry (served at /metrics):
frames, dropped frames, classified frames and camera outages from the latest status
(read when scraped, so the loop pays nothing per frame), screenings by outcome and origin and
camera reconnects from the events, the inference latency of every classified frame, and the
audit log's failed writes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.decision import Origin, Outcome
from edge.events import CameraBack, CameraLost, Event, KioskStatus, ScreeningDone
from edge.port import KioskPort

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class _StatusCollector:
    """Counters the status already keeps, exported as they stand at scrape time."""

    def __init__(self, output: MetricsOutput) -> None:
        self.output = output

    def collect(self):
        st = self.output.port.status
        for name, doc, value in (("mpox_frames", "Frames processed by the kiosk loop", st.frames),
                                 ("mpox_frames_dropped", "Frames dropped because the loop was behind", st.dropped),
                                 ("mpox_frames_classified", "Frames the model classified", st.classified),
                                 ("mpox_camera_outages", "Times the camera failed or stalled", st.outages),
                                 ("mpox_screenings_abandoned", "Assessments discarded because the person left", st.abandoned),
                                 ("mpox_audit_write_failures", "Audit log writes the database refused", st.audit_write_failures)):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        up = GaugeMetricFamily("mpox_camera_up", "1 while the camera delivers frames")
        up.add_metric([], 1.0 if st.camera_ok else 0.0)
        yield up
        fps = GaugeMetricFamily("mpox_fps", "Frames processed per second")
        fps.add_metric([], st.fps)
        yield fps


class MetricsOutput:
    def __init__(self, port: KioskPort) -> None:
        self.port = port
        self._classified = port.status.classified
        self._camera_lost = False
        self.registry = CollectorRegistry()
        self.screenings = Counter("mpox_screenings", "Screenings finished, by outcome and where the picture came from",
                                  ["outcome", "origin"], registry=self.registry)
        for outcome in Outcome:
            for origin in Origin:
                self.screenings.labels(outcome.value, origin.value)  # every series exists from the start, at 0
        self.reconnects = Counter("mpox_camera_reconnects", "Times the camera came back after an outage", registry=self.registry)
        self.inference = Histogram("mpox_inference_seconds", "Preprocessing and inference of one classified frame",
                                   buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_StatusCollector(self))

    def on_event(self, event: Event) -> None:
        match event:
            case ScreeningDone(screening=s):
                self.screenings.labels(s.outcome.value, s.origin.value).inc()
            case CameraLost():
                self._camera_lost = True
            case CameraBack():
                if self._camera_lost:
                    self.reconnects.inc()
                self._camera_lost = False

    def on_status(self, status: KioskStatus) -> None:
        """O(1): one histogram observation when a frame was classified; the rest is read from
        the kiosk's snapshot when scraped."""
        if status.classified != self._classified:
            self._classified = status.classified
            self.inference.observe(status.infer_ms / 1000)
