"""The kiosk's one YAML config, validated by pydantic.

Every key has a default that works with no config file at all (the demo source, the shipped
Fast-MpoxNet, state in ./kiosk-state). An unknown or wrong key is an error naming the
key and its line in the file, because a typo in an unattended kiosk's config must not pass
silently.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ConfigError



def shipped_models_dir() -> Path:
    """models/ of the checkout, or where `pip install .` put it (<prefix>/share/mpox-kiosk/models)."""
    checkout = Path(__file__).resolve().parent.parent / "models"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "mpox-kiosk" / "models"


MODELS_DIR = shipped_models_dir()



def systemd_credential(name: str) -> Path | None:
    """Where systemd put the secret `name` of LoadCredential= ($CREDENTIALS_DIRECTORY/name);
    None when the service was given none (or the kiosk does not run under systemd)."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    path = Path(folder) / name if folder else None
    return path if path is not None and path.is_file() else None

class Section(BaseModel):
    # NaN and infinity pass every range check (NaN compares false) and break the run later.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SourceConfig(Section):
    """Where frames come from. kind: demo | device | url | file | folder | picamera2."""

    kind: Literal["demo", "device", "url", "file", "folder", "picamera2"] = "demo"
    target: str | None = None  # device index or /dev/videoN, URL, file or folder path
    width: int = Field(1280, gt=0)
    height: int = Field(720, gt=0)
    # Playback rate of demo/folder/file (0: as fast as possible; a file keeps its own clock, so its
    # decisions do not depend on it); a camera's requested rate.
    fps: float = Field(15.0, ge=0, le=240)
    # file and folder: start again at the end. Off by default: a recording is screened once and the
    # kiosk stops, so its audit log holds each visit once, not once a replay.
    loop: bool = False
    read_timeout_s: float = Field(2.0, gt=0)  # a read that takes longer counts as a stall
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _target_needed(self) -> SourceConfig:
        if self.kind in ("device", "url", "file", "folder") and not self.target:
            raise ValueError(f"source kind '{self.kind}' needs a target")
        return self


class ModelConfig(Section):
    """Which IR runs. On a Raspberry Pi, see README 'Raspberry Pi' for the choice."""

    # The float IR: on kiosk-view folds int8 cost 1.0 pp accuracy and 2.8 pp mpox sensitivity
    # (docs/RESULTS.md "Int8"); at 1-2 ms per classified frame the loop does not need it.
    path: Path = MODELS_DIR / "fast-mpoxnet.xml"
    device: str = "CPU"
    inference_precision: Literal["f32", "bf16", "f16"] | None = None  # None: OpenVINO's default for the device
    threads: int = Field(0, ge=0)  # 0: OpenVINO decides
    checksums: Path | None = None  # default: SHA256SUMS beside the model; the model must be listed
    verify_checksum: bool = True
    mpox_threshold: float | None = Field(None, gt=0, lt=1)  # None: the model's own (chosen for sensitivity)


class PresenceConfig(Section):
    """Whether someone shows something in the box, where, and how still (edge/scene.py):
    change against the learned empty scene, on a thumbnail `grid` cells wide."""

    grid: int = Field(64, ge=16, le=256)
    cell_change: float = Field(20.0, gt=0, le=255)  # grey levels a cell must differ from the empty scene
    min_fill: float = Field(0.05, gt=0, le=1)  # share of the box the changed blob must cover: someone is there
    close_fill: float = Field(0.1, gt=0, le=1)  # below (and above min_fill): "come closer"
    # The classified square's side over the shown thing's longer side: below 1 it leaves out the
    # thing's edges (arm, hand, sleeve; a lesion is what people centre). 0.86 classified held-out
    # photos as well as the photos themselves in `mpox simulate --view-check` (1.08: 5-10 pp less).
    region_scale: float = Field(0.86, ge=0.3, le=1.5)
    max_motion: float = Field(0.04, gt=0)  # how far the region moved since the last frame, as a share of its side; above: moving
    # The picture (a scene, not a blank field) still this long at start: that is the empty scene.
    # Short, so that a visit soon after a start (a recording that opens on the approach) finds it learned.
    learn_s: float = Field(0.2, gt=0, le=60)
    relearn_s: float = Field(30.0, gt=0)  # something still this long and not being screened becomes the scene
    adapt: float = Field(0.05, gt=0, le=1)  # per frame, how fast the empty scene follows light drift

    @model_validator(mode="after")
    def _fills_ordered(self) -> PresenceConfig:
        if self.close_fill < self.min_fill:
            raise ValueError("close_fill must be >= min_fill")
        return self


class QualityConfig(Section):
    """The gate before any diagnosis, on the target box (fractions of the frame) and the
    region found in it."""

    box: tuple[float, float, float, float] = (0.25, 0.15, 0.5, 0.7)  # x, y, w, h
    min_brightness: float = Field(40, ge=0, le=255)
    max_brightness: float = Field(225, ge=0, le=255)
    max_clipped_fraction: float = Field(0.4, ge=0, le=1)  # of the region black or white; photos often have a dark or white margin
    min_sharpness: float = Field(10.0, ge=0)  # variance of the Laplacian; lower: "hold still"
    # Light or focus problems that last this long while the person holds still are the picture's
    # own (white paper behind a hand, a soft photo): classified anyway (edge.quality.Patience).
    accept_after_s: float = Field(2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _box_inside(self) -> QualityConfig:
        x, y, w, h = self.box
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > 1 or y + h > 1:
            raise ValueError("box must be x, y, w, h fractions inside the frame")
        return self


class DecisionConfig(Section):
    frames: int = Field(12, ge=1)  # steady good frames collected for one screening
    best_frames: int = Field(8, ge=1)  # of those, the sharpest are averaged
    settle_s: float = Field(0.4, ge=0)  # good frames this long in a row before they count: the approach is over
    result_hold_s: float = Field(8.0, gt=0)
    leave_after_s: float = Field(1.5, gt=0)  # this long without anyone in the box: the person has left
    guidance_timeout_s: float = Field(20.0, gt=0)  # guiding this long without a result: back to idle
    min_confidence: float = Field(0.55, ge=0, le=1)  # the label's share of the non-mpox probability below: uncertain
    min_agreement: float = Field(0.6, ge=0, le=1)  # share of frames agreeing with the result below: uncertain

    @model_validator(mode="after")
    def _best_of_collected(self) -> DecisionConfig:
        if self.best_frames > self.frames:
            raise ValueError("best_frames must be <= frames")
        return self


class StoreConfig(Section):
    keep_best_frame: bool = False  # opt-in: keep each screening's sharpest frame (JPEG)
    frame_days: float = Field(7, gt=0, le=3650)  # kept frames are deleted after this long
    retention_days: float = Field(365, gt=0, le=36500)
    max_mb: float = Field(500, gt=0, le=1_000_000)  # database plus frames; oldest screenings go first


TOPIC_UNSAFE = set("/+#\0")  # MQTT topic separators and wildcards: a site or kiosk name must not contain them


class FleetConfig(Section):
    """The uplink to the health authority's MQTT broker (edge/outputs/fleet.py). Off by
    default: the kiosk contacts no network unless this is enabled. The password comes from the
    systemd credential `mqtt-password` ($CREDENTIALS_DIRECTORY/mqtt-password) when there is one,
    else from `password` here."""

    enabled: bool = False
    host: str | None = None  # the broker; required when enabled
    port: int = Field(8883, gt=0, lt=65536)  # 8883: MQTT over TLS; 1883 is plain MQTT
    site: str = Field("site-1", min_length=1)  # topics are mpox/<site>/<kiosk_id>/...
    mqtt_version: Literal["3.1.1", "5"] = "5"
    tls: bool = True
    ca_file: Path | None = None  # the broker's CA (PEM); null: the system's CAs
    client_cert: Path | None = None  # PEM client certificate, when the broker wants one
    client_key: Path | None = None  # its key; null: inside client_cert
    username: str | None = None
    password: str | None = None  # prefer the systemd credential mqtt-password (LoadCredential=)
    qos: Literal[1, 2] = 1  # screenings are marked sent only when the broker acknowledged them
    health_interval_s: float = Field(60.0, ge=1, le=86400)
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_max_s: float = Field(30.0, ge=0.1, le=3600)  # backoff between reconnect attempts, doubling from 1 s up to this

    @model_validator(mode="after")
    def _usable(self) -> FleetConfig:
        if self.enabled and not self.host:
            raise ValueError("fleet.enabled needs fleet.host (the broker)")
        if TOPIC_UNSAFE & set(self.site):
            raise ValueError("site must not contain '/', '+' or '#' (it is part of MQTT topics)")
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert")
        return self


class RolloutConfig(Section):
    """Signed model bundles from the health authority (edge/rollout.py, README "Rolling out a
    model"). An installed bundle runs instead of model.path, which stays the fallback."""

    public_key: Path | None = None  # the authority's ed25519 public key (PEM); None: no bundle can be installed
    max_bundle_mb: float = Field(200, gt=0, le=10_000)  # a larger bundle or download is refused
    download_timeout_s: float = Field(60, gt=0)  # per network read of an http(s) bundle
    trial_s: float = Field(300, gt=0)  # a new model must process trial_frames frames within this long after start
    trial_frames: int = Field(100, ge=1)  # frames through the loop that confirm a new model
    trial_starts: int = Field(3, ge=1)  # starts on an unconfirmed model (crash, hang, power loss) before it is rolled back


LANGUAGES = ("en", "fr", "pt", "es", "sw")  # the translations shipped in edge/web/i18n/


class WebConfig(Section):
    """The kiosk's web pages (edge/web/): the kiosk screen at /, the staff dashboard at
    /staff, the photo check at /check, /healthz and /metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"  # only this machine; 0.0.0.0 (or an address) serves the local network
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (tests)
    staff_password_hash: str | None = None  # argon2 (`mpox web hash-password`); else $CREDENTIALS_DIRECTORY/staff-password-hash
    session_hours: float = Field(12, gt=0, le=720)  # a staff login lasts this long
    login_attempts: int = Field(5, ge=1, le=100)  # failed logins per client in 5 minutes before it must wait
    check_needs_login: bool = True  # the photo check page (/check) is for staff only
    consent: bool = True  # nobody is screened until "I agree" is tapped on the kiosk screen (one tap, one screening); not a recording (file, folder)
    result_s: float = Field(20, gt=0, le=600)  # the result card stays this long (a countdown), then back to the start
    idle_reset_s: float = Field(60, gt=0, le=3600)  # after "I agree", this long with nobody screened: back to the start
    languages: tuple[Literal["en", "fr", "pt", "es", "sw"], ...] = LANGUAGES  # offered on the kiosk screen, first is the default
    site_dir: Path | None = None  # a folder of {language}.json files overriding any text (consent, next steps, phone)
    preview_fps: float = Field(5.0, gt=0, le=30)  # the live picture's rate on the kiosk screen
    preview_remote: bool = False  # serve the live picture and results to other machines' kiosk pages too (default: this machine only)
    max_upload_mb: float = Field(12, gt=0, le=100)  # largest photo /check accepts

    @model_validator(mode="after")
    def _some_language(self) -> WebConfig:
        if not self.languages:
            raise ValueError("languages must name at least one of " + ", ".join(LANGUAGES))
        return self


class KioskConfig(Section):
    kiosk_id: str = "kiosk-1"
    state_dir: Path = Path("kiosk-state")
    queue_size: int = Field(4, ge=1)
    source: SourceConfig = SourceConfig()
    model: ModelConfig = ModelConfig()
    presence: PresenceConfig = PresenceConfig()
    quality: QualityConfig = QualityConfig()
    decision: DecisionConfig = DecisionConfig()
    store: StoreConfig = StoreConfig()
    fleet: FleetConfig = FleetConfig()
    rollout: RolloutConfig = RolloutConfig()
    web: WebConfig = WebConfig()

    @model_validator(mode="after")
    def _kiosk_id_fits_a_topic(self) -> KioskConfig:
        if self.fleet.enabled and (TOPIC_UNSAFE & set(self.kiosk_id) or not self.kiosk_id):
            raise ValueError("kiosk_id must not contain '/', '+' or '#' when fleet is enabled (it is part of MQTT topics)")
        return self


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location (or its nearest parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == key), None)
            if found is None:
                break
            node = found[1] if key != loc[-1] else found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def load_config(path: str | Path | None) -> KioskConfig:
    """KioskConfig from a YAML file (None: all defaults); ConfigError naming key and line."""
    if path is None:
        return KioskConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        cfg = KioskConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and k.startswith("function-")))
            key = ".".join(str(k) for k in loc) or "(top level)"
            line = _line_of(node, loc)
            what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{path}:{line}: {key}: {what}" if line else f"{path}: {key}: {what}")
        raise ConfigError("; ".join(problems)) from None
    # Relative paths are relative to the config file, not to wherever the service starts.
    base = path.parent.resolve()
    if not cfg.state_dir.is_absolute():
        cfg = cfg.model_copy(update={"state_dir": base / cfg.state_dir})
    site = cfg.web.site_dir
    if site is not None and not site.is_absolute():
        cfg = cfg.model_copy(update={"web": cfg.web.model_copy(update={"site_dir": base / site})})
    if "path" in data.get("model", {}) and not cfg.model.path.is_absolute():
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": base / cfg.model.path})})
    fleet_files = {k: base / v for k in ("ca_file", "client_cert", "client_key") if (v := getattr(cfg.fleet, k)) and not v.is_absolute()}
    if fleet_files:
        cfg = cfg.model_copy(update={"fleet": cfg.fleet.model_copy(update=fleet_files)})
    if cfg.rollout.public_key is not None and not cfg.rollout.public_key.is_absolute():
        cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"public_key": base / cfg.rollout.public_key})})
    return cfg
