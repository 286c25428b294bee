"""Frame sources behind one interface; `open_source` picks one from the config."""

from __future__ import annotations

from pathlib import Path

from edge.config import QualityConfig, SourceConfig
from edge.sources.base import Source


def open_source(cfg: SourceConfig, box: tuple[float, float, float, float] = QualityConfig().box,
                cache_dir: Path | None = None) -> Source:
    """The configured source, not yet opened (Capture opens it, and reopens it after failures).
    `box` is the kiosk's target box: the demo's people show their lesion in it; `cache_dir`
    keeps the demo's prepared frames across restarts (the kiosk's state folder)."""
    if cfg.kind == "demo":
        from edge.sources.demo import DemoSource

        return DemoSource(fps=cfg.fps, box=box, cache_dir=cache_dir)  # its own 640x480: the pictures are 224 px, a bigger canvas only blurs them
    if cfg.kind == "folder":
        from edge.sources.folder import FolderSource

        return FolderSource(cfg.target, cfg.fps, cfg.loop)
    if cfg.kind == "picamera2":
        from edge.sources.picamera import PiCameraSource

        return PiCameraSource(cfg.width, cfg.height, cfg.fps, cfg.read_timeout_s)
    from edge.sources.opencv import OpenCVSource

    return OpenCVSource(cfg.kind, cfg.target, cfg.width, cfg.height, cfg.fps, cfg.loop)
