"""The kiosk's one YAML config, validated by pydantic.

Every key has a default that works with no config file at all (the demo source, the shipped
Fast-MpoxNet, state in ./kiosk-state). An unknown or wrong key is an error naming the
key and its line in the file, because a typo in an unattended kiosk's config must not pass
silently.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.errors import ConfigError

log = logging.getLogger(__name__)



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

    kind: Literal["demo", "device", "url", "file", "folder", "picamera2"] = Field("demo",
        description="demo | device | url | file | folder | picamera2")
    target: str | None = Field(None, json_schema_extra={"example": "/dev/video0"},
        description="device index or /dev/videoN, rtsp:// or http:// URL, video file, image folder")
    width: int = Field(1280, gt=0, le=16384, description="requested camera size; picamera2: the low-res stream's size (e.g. 448x336)")
    height: int = Field(720, gt=0, le=16384, description="requested camera height (see width)")
    # Playback rate of demo/folder/file (0: as fast as possible; a file keeps its own clock, so its
    # decisions do not depend on it); a camera's requested rate.
    fps: float = Field(15.0, ge=0, le=240,
        description="playback rate of demo/folder/file (0: as fast as possible; a file keeps its own clock); a camera's requested rate")
    # file and folder: start again at the end. Off by default: a recording is screened once and the
    # kiosk stops, so its audit log holds each visit once, not once a replay.
    loop: bool = Field(False, description="file and folder: start again at the end (off: played once, then the kiosk stops)")
    read_timeout_s: float = Field(2.0, gt=0, le=3600, description="a read that takes longer is a stall: the camera is reopened")
    reconnect_min_s: float = Field(0.5, gt=0, le=3600, description="backoff between reopen attempts, doubling up to the max")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="the longest wait between reopen attempts")

    @model_validator(mode="after")
    def _target_needed(self) -> SourceConfig:
        if self.kind in ("device", "url", "file", "folder") and not self.target:
            raise ValueError(f"source kind '{self.kind}' needs a target")
        return self


class ModelConfig(Section):
    """Which IR runs. On a Raspberry Pi, see README 'Raspberry Pi' for the choice."""

    # The float IR: on kiosk-view folds int8 cost 1.0 pp accuracy and 2.8 pp mpox sensitivity
    # (docs/RESULTS.md "Int8"); at 1-2 ms per classified frame the loop does not need it.
    path: Path = Field(MODELS_DIR / "fast-mpoxnet.xml", json_schema_extra={"example": "../models/fast-mpoxnet.xml"},
        description="default: the shipped Fast-MpoxNet (float IR; -int8.xml is smaller, less accurate)")
    device: str = Field("CPU", description="the OpenVINO device (CPU; GPU or NPU where the machine has one)")
    inference_precision: Literal["f32", "bf16", "f16"] | None = Field(None,
        description="null: OpenVINO's default (bf16 on AVX-512 BF16 CPUs; f16 on a Pi 5, f32 on a Pi 4); f32 to force full precision")
    # One: a frame is classified on the loop's own thread. A second thread costs ~60% more CPU per
    # frame to save ~1.2 ms, which a loop at 15 fps does not need (benchmarks/RESULTS.md "Inference threads").
    threads: int = Field(1, ge=0, le=1024, description="inference threads; 0: OpenVINO decides (every core)")
    checksums: Path | None = Field(None, description="null: SHA256SUMS beside the model; the model must be listed there")
    verify_checksum: bool = Field(True, description="refuse a model that does not match its SHA256SUMS")
    mpox_threshold: float | None = Field(None, gt=0, lt=1,
        description="null: the model's own (chosen on validation data for >= 95% mpox sensitivity)")


class PresenceConfig(Section):
    """Whether someone shows something in the box, where, and how still (edge/scene.py):
    change against the learned empty scene, on a thumbnail `grid` cells wide."""

    grid: int = Field(64, ge=16, le=256, description="thumbnail width in cells (~20 px each at 1280x720)")
    cell_change: float = Field(20.0, gt=0, le=255, description="grey levels a cell must differ from the empty scene")
    min_fill: float = Field(0.05, gt=0, le=1, description="share of the box the changed blob must cover: someone is there")
    close_fill: float = Field(0.1, gt=0, le=1, description="below this (and above min_fill): 'come closer'")
    # The classified square's side over the shown thing's longer side: below 1 it leaves out the
    # thing's edges (arm, hand, sleeve; a lesion is what people centre). 0.86 classified held-out
    # photos as well as the photos themselves in `mpox simulate --view-check` (1.08: 5-10 pp less).
    region_scale: float = Field(0.86, ge=0.3, le=1.5,
        description="the classified square's side over the shown thing's longer side: below 1 leaves out its edges (arm, sleeve)")
    max_motion: float = Field(0.04, gt=0, le=100,
        description="how far the region moved since the last frame, as a share of its side; above: 'hold still'")
    # The picture (a scene, not a blank field) still this long at start: that is the empty scene.
    # Short, so that a visit soon after a start (a recording that opens on the approach) finds it learned.
    learn_s: float = Field(0.2, gt=0, le=60,
        description="the picture (not a blank field) still this long at start: that is the empty scene")
    relearn_s: float = Field(30.0, gt=0, le=86400, description="something still this long and not being screened becomes part of the scene")
    adapt: float = Field(0.05, gt=0, le=1, description="per frame, how fast the empty scene follows light drift")
    # Nothing to classify (awaiting consent or showing a result, whoever is in front; idle with
    # nobody in front): the scene is looked at this often, the frames between left unseen (a
    # camera's not even decoded); the tap, or anything changed in the box of an idle kiosk, wakes
    # it to every frame. A lesion takes over half a second to come in and settle, so a few looks
    # a second see every visit start.
    idle_fps: float = Field(5.0, ge=0, le=60,
        description="with nothing to classify (nobody in front, awaiting consent, a result shown), frames looked at per second (0: every frame); the tap or a change in the box wakes the kiosk")

    @model_validator(mode="after")
    def _fills_ordered(self) -> PresenceConfig:
        if self.close_fill < self.min_fill:
            raise ValueError("close_fill must be >= min_fill")
        return self


class QualityConfig(Section):
    """The gate before any diagnosis, on the target box (fractions of the frame) and the
    region found in it."""

    box: tuple[float, float, float, float] = Field((0.25, 0.15, 0.5, 0.7), description="x, y, w, h as fractions of the frame")
    min_brightness: float = Field(40, ge=0, le=255, description="mean grey of the region, 0..255")
    max_brightness: float = Field(225, ge=0, le=255, description="above this mean grey: too bright")
    max_clipped_fraction: float = Field(0.4, ge=0, le=1,
        description="share of the region black or white; photos often have a dark or white margin")
    min_sharpness: float = Field(10.0, ge=0, le=1e6, description="variance of the Laplacian; below: 'hold still'")
    # Light or focus problems that last this long while the person holds still are the picture's
    # own (white paper behind a hand, a soft photo): classified anyway (edge.quality.Patience).
    accept_after_s: float = Field(2.0, gt=0, le=60,
        description="light or focus problems that last this long while held still are the picture's own: classified anyway")

    @model_validator(mode="after")
    def _box_inside(self) -> QualityConfig:
        x, y, w, h = self.box
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > 1 or y + h > 1:
            raise ValueError("box must be x, y, w, h fractions inside the frame")
        return self


class DecisionConfig(Section):
    frames: int = Field(12, ge=1, le=1000, description="steady good frames collected for one screening")
    best_frames: int = Field(8, ge=1, le=1000, description="of those, the sharpest are averaged")
    settle_s: float = Field(0.4, ge=0, le=60, description="good frames this long in a row before they count: the approach is over")
    result_hold_s: float = Field(8.0, gt=0, le=3600, description="the result stays on screen at least this long")
    leave_after_s: float = Field(1.5, gt=0, le=3600, description="this long with nobody in the box: the person has left")
    guidance_timeout_s: float = Field(20.0, gt=0, le=3600, description="guiding this long without a result: back to idle")
    min_confidence: float = Field(0.55, ge=0, le=1,
        description="the result's share of the non-mpox probability below this: 'uncertain: please see staff'")
    min_agreement: float = Field(0.6, ge=0, le=1, description="share of frames agreeing with the result below this: uncertain")
    consent_lapse_s: float = Field(60, gt=0, le=3600,
        description="after 'I agree' (web.consent), this long with no screening under way: back to the start")
    # A person is guided, screened and reads the result in well under a minute; an episode this
    # long is the kiosk taking something for a person (edge.decision.ScreeningMachine.stuck).
    stuck_after_s: float = Field(90, gt=0, le=86400,
        description="a screening episode (guiding, assessing, result) longer than this is stuck: reported, and the kiosk starts over")

    @model_validator(mode="after")
    def _best_of_collected(self) -> DecisionConfig:
        if self.best_frames > self.frames:
            raise ValueError("best_frames must be <= frames")
        if self.stuck_after_s <= self.result_hold_s + self.leave_after_s:
            raise ValueError("stuck_after_s must be longer than result_hold_s + leave_after_s")
        return self


class StoreConfig(Section):
    keep_best_frame: bool = Field(False, description="opt-in: keep each screening's sharpest frame (JPEG); needs consent where you deploy")
    frame_days: float = Field(7, gt=0, le=3650, description="kept frames are deleted after this many days")
    retention_days: float = Field(365, gt=0, le=36500, description="audit rows older than this are deleted")
    max_mb: float = Field(500, gt=0, le=1_000_000, description="database plus frames; the oldest screenings go first")


TOPIC_UNSAFE = set("/+#\0")  # MQTT topic separators and wildcards: a site or kiosk name must not contain them


class FleetConfig(Section):
    """The uplink to the health authority's MQTT broker (edge/outputs/fleet.py). Off by
    default: the kiosk contacts no network unless this is enabled. The password comes from the
    systemd credential `mqtt-password` ($CREDENTIALS_DIRECTORY/mqtt-password) when there is one,
    else from `password` here."""

    enabled: bool = Field(False, description="report to the broker (off: no network contact)")
    host: str | None = Field(None, description="the broker, e.g. mqtt.health.example; required when enabled")
    port: int = Field(8883, gt=0, lt=65536, description="8883: MQTT over TLS; 1883: plain MQTT")
    site: str = Field("site-1", min_length=1, description="topics: mpox/<site>/<kiosk_id>/screening|event|status|health")
    mqtt_version: Literal["3.1.1", "5"] = Field("5", description="'3.1.1' or '5'")
    tls: bool = Field(True, description="MQTT over TLS (off only on a trusted network)")
    ca_file: Path | None = Field(None, description="the broker's CA certificate (PEM); null: the system's CAs")
    client_cert: Path | None = Field(None, description="PEM client certificate, if the broker wants one")
    client_key: Path | None = Field(None, description="its key; null: inside client_cert")
    username: str | None = Field(None, description="the broker login")
    password: str | None = Field(None, description="better: the systemd credential mqtt-password (LoadCredential=mqtt-password:/etc/...)")
    qos: Literal[1, 2] = Field(1, description="1 or 2, towards the broker; a record counts as delivered only when the collector acknowledged it")
    resend_after_s: float = Field(60.0, ge=0.5, le=86400,
        description="what the collector has not acknowledged this long is sent again, oldest first (the wait doubles while nothing comes)")
    health_interval_s: float = Field(60.0, ge=1, le=86400, description="retained .../health: fps, drops, outages, disk free, model")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive: the broker declares the kiosk offline after 1.5x this")
    reconnect_max_s: float = Field(30.0, ge=0.1, le=3600, description="reconnect backoff doubles from 1 s up to this")

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

    public_key: Path | None = Field(None,
        description="the authority's ed25519 public key (PEM file); null: `mpox models install` refuses every bundle")
    max_bundle_mb: float = Field(200, gt=0, le=10_000, description="a larger bundle or download is refused")
    download_timeout_s: float = Field(60, gt=0, le=3600, description="per network read when the bundle is an http(s) URL")
    trial_s: float = Field(300, gt=0, le=86400, description="after a new model's first start it must process trial_frames frames within this long...")
    trial_frames: int = Field(100, ge=1, le=10_000_000, description="...or it is rolled back to the previous one; then it is confirmed")
    trial_starts: int = Field(3, ge=1, le=100, description="starts on an unconfirmed model (crash, hang, power loss) before it is rolled back")


def is_argon2_hash(value: str) -> bool:
    """Whether value is an argon2 hash argon2-cffi can check a password against."""
    from argon2 import extract_parameters
    from argon2.exceptions import InvalidHashError

    try:
        extract_parameters(value)
    except (InvalidHashError, ValueError):
        return False
    return value.startswith("$argon2")


def is_loopback(host: str) -> bool:
    """Whether an address serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it resolves to whatever the network says
        return False


LANGUAGES = ("en", "fr", "pt", "es", "sw")  # the translations shipped in edge/web/i18n/


class WebConfig(Section):
    """The kiosk's web pages (edge/web/): the kiosk screen at /, the staff dashboard at
    /staff, the photo check at /check, /healthz and /metrics."""

    enabled: bool = Field(True, description="serve the pages (and the consent screen, the metrics)")
    host: str = Field("127.0.0.1",
        description="only this machine; another address (0.0.0.0: the local network) needs tls_cert and tls_key, "
                    "or plain_http_on_network: true")
    port: int = Field(8080, ge=0, le=65535, description="0: any free port (tests)")
    tls_cert: Path | None = Field(None, json_schema_extra={"example": "/etc/mpox-kiosk/web-cert.pem"},
        description="HTTPS: the pages' certificate (PEM, with its chain); needed to serve beyond this machine")
    tls_key: Path | None = Field(None, json_schema_extra={"example": "/etc/mpox-kiosk/web-key.pem"},
        description="the certificate's private key (PEM), readable by the kiosk's user")
    plain_http_on_network: bool = Field(False,
        description="serve a non-loopback host without TLS anyway: the staff password, sessions and CSV cross the network in clear")
    staff_password_hash: str | None = Field(None,
        description="argon2 hash from `mpox web hash-password`; better: a systemd credential staff-password-hash")
    session_hours: float = Field(12, gt=0, le=720, description="a staff login lasts this long")
    login_attempts: int = Field(5, ge=1, le=100,
        description="login attempts per client in 5 minutes (counted before the check; a success forgets them) before it must wait")
    check_needs_login: bool = Field(True, description="the photo check page is for staff only")
    consent: bool = Field(True,
        description="nobody is screened until 'I agree' is tapped on the kiosk screen (one tap, one screening); "
                    "not for a file or folder (a recording)")
    result_s: float = Field(20, gt=0, le=600, description="the result card stays this long (a countdown), then back to the start")
    languages: tuple[Literal["en", "fr", "pt", "es", "sw"], ...] = Field(LANGUAGES,
        description="offered on the kiosk screen; the first is the default")
    site_dir: Path | None = Field(None,
        description="folder of en.json, fr.json, ... overriding any text (consent, next steps, phone number)")
    preview_fps: float = Field(5.0, gt=0, le=30, description="the live picture's rate on the kiosk screen")
    preview_remote: bool = Field(False,
        description="serve the live picture and results to other machines' kiosk pages too (default: this machine only)")
    max_upload_mb: float = Field(12, gt=0, le=100, description="largest photo /check accepts")

    @field_validator("staff_password_hash")
    @classmethod
    def _an_argon2_hash(cls, value: str | None) -> str | None:
        """Never echoes the value: it is a secret (or a password pasted by mistake)."""
        if value is not None and not is_argon2_hash(value):
            raise ValueError("is not an argon2 hash: make one with `mpox web hash-password` and paste what it prints")
        return value

    @field_validator("host")
    @classmethod
    def _some_host(cls, host: str) -> str:
        if not host.strip():
            raise ValueError("must not be empty (that would serve every interface): 127.0.0.1 serves this machine only")
        return host

    @model_validator(mode="after")
    def _usable(self) -> WebConfig:
        if not self.languages:
            raise ValueError("languages must name at least one of " + ", ".join(LANGUAGES))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (HTTPS needs both)")
        if not is_loopback(self.host) and self.tls_cert is None and not self.plain_http_on_network:
            raise ValueError(f"host {self.host} serves the network: set tls_cert and tls_key (HTTPS), or "
                             "plain_http_on_network: true to send the staff password, sessions and CSV in clear")
        return self


class KioskConfig(Section):
    """The whole config. Every key carries its description here, once: deploy/kiosk.example.yaml
    is generated from them (`mpox kiosk example-config`, edge/config_example.py)."""

    kiosk_id: str = Field("kiosk-1", description="names this kiosk in the audit log and its fleet topics; unique per kiosk "
                          "(deploy/install.sh writes kiosk-<8 hex digits from a hash of /etc/machine-id>)")
    state_dir: Path = Field(Path("kiosk-state"), description="audit.sqlite and (opt-in) kept frames")
    queue_size: int = Field(4, ge=1, le=1000, description="frames between capture and inference; when full the oldest is dropped")
    source: SourceConfig = Field(SourceConfig(), description="where frames come from")
    model: ModelConfig = Field(ModelConfig(), description="which model runs, where, and at which mpox threshold")
    presence: PresenceConfig = Field(PresenceConfig(),
        description="who is in front: change against the empty scene, learned at start (edge/scene.py)")
    quality: QualityConfig = Field(QualityConfig(), description="the gate before any diagnosis, on the region shown in the target box")
    decision: DecisionConfig = Field(DecisionConfig(), description="one screening: frames, result, doubt, and the consent rule")
    store: StoreConfig = Field(StoreConfig(), description="the audit log (edge/store.py): what is kept, and for how long")
    fleet: FleetConfig = Field(FleetConfig(),
        description="reporting to the health authority's MQTT broker (edge/outputs/fleet.py); off: no network contact")
    rollout: RolloutConfig = Field(RolloutConfig(),
        description="signed model bundles from the health authority (README 'Rolling out a model')")
    web: WebConfig = Field(WebConfig(),
        description="the kiosk's pages: kiosk screen /, staff dashboard /staff, photo check /check, /healthz, /metrics")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data):
        """web.idle_reset_s became decision.consent_lapse_s (consent is the kiosk's rule, not the
        pages'): an older config still loads, with one warning."""
        if isinstance(data, dict) and isinstance(data.get("web"), dict) and "idle_reset_s" in data["web"]:
            web = dict(data["web"])
            decision = dict(data.get("decision") or {})
            decision.setdefault("consent_lapse_s", web.pop("idle_reset_s"))
            log.warning("config: web.idle_reset_s is now decision.consent_lapse_s; please rename it")
            data = {**data, "web": web, "decision": decision}
        return data

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


SECRETS = (("web", "staff_password_hash"), ("fleet", "password"))  # never printed: `validate-config` shows "(set)"


def masked(cfg: KioskConfig) -> dict:
    """The settings as JSON values, each secret replaced by "(set)" (or null when not set)."""
    data = cfg.model_dump(mode="json")
    for section, key in SECRETS:
        if data[section][key] is not None:
            data[section][key] = "(set)"
    return data


# Files the config names that must exist when it is loaded: found missing now, not at the first
# TLS handshake or screening (fleet.ca_file missing would otherwise read as an untrusted broker).
NEEDED_FILES = (("web", "tls_cert"), ("web", "tls_key"), ("fleet", "ca_file"), ("fleet", "client_cert"), ("fleet", "client_key"))


WHOLE_NUMBER_ERRORS = ("int_parsing", "int_parsing_size", "int_from_float")


def _duplicate_keys(node: yaml.Node | None, prefix: str = "", visited: set[int] | None = None) -> list[tuple[str, int, int]]:
    """(dotted key, first line, repeated line) of each key a mapping holds twice: PyYAML keeps
    the last silently, so a second `web:` section would drop the first one's settings. An
    alias is walked once (`a: &a [*a]` refers to itself)."""
    visited = set() if visited is None else visited
    if node is None or id(node) in visited:
        return []
    visited.add(id(node))
    found: list[tuple[str, int, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            line = k.start_mark.line + 1
            if key is not None and key in seen:
                found.append((prefix + str(key), seen[key], line))
            elif key is not None:
                seen[key] = line
            found += _duplicate_keys(v, f"{prefix}{key}.", visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            found += _duplicate_keys(v, f"{prefix}{i}.", visited)
    return found


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
    if twice := _duplicate_keys(node):
        raise ConfigError("; ".join(f"{path}:{line}: {key}: given twice (first on line {first}); the last would silently "
                                    "win: keep one" for key, first, line in twice))
    try:
        cfg = KioskConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError("; ".join(_problem(err, node, path) for err in e.errors())) from None
    cfg = _relative_to(cfg, path.parent.resolve(), data)
    missing = [f"{path}:{_line_of(node, (section, key))}: {section}.{key}: {file} not found"
               for section, key in NEEDED_FILES if (file := getattr(getattr(cfg, section), key)) is not None and not file.is_file()]
    if missing:
        raise ConfigError("; ".join(missing))
    return cfg


def _problem(err, node: yaml.Node | None, path: Path) -> str:
    """One pydantic error as `file:line: key: what` (never the value of a secret: pydantic's
    messages do not hold the input, and the one added here is for numbers only)."""
    loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and k.startswith("function-")))
    key = ".".join(str(k) for k in loc) or "(top level)"
    line = _line_of(node, loc)
    what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    if err["type"] in WHOLE_NUMBER_ERRORS:  # e.g. 1e23, which YAML reads as a string
        what = f"must be a whole number, not {str(err['input'])[:40]!r}"
    return f"{path}:{line}: {key}: {what}" if line else f"{path}: {key}: {what}"


def _relative_to(cfg: KioskConfig, base: Path, data: dict) -> KioskConfig:
    """Relative paths are relative to the config file, not to wherever the service starts."""
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
    web_files = {k: base / v for k in ("tls_cert", "tls_key") if (v := getattr(cfg.web, k)) and not v.is_absolute()}
    if web_files:
        cfg = cfg.model_copy(update={"web": cfg.web.model_copy(update=web_files)})
    return cfg
