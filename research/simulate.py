"""Whole screenings, simulated: held-out photos shown to the real kiosk, session by session.

Each session is a person's visit (edge/visits.py: a room, the lesion coming in, held with a
tremor, leaving; the camera drifting, noisy and compressed) played frame by frame into the
real `Kiosk.process` (scene, gate, engine, state machine, audit log) on a simulated clock,
so it runs faster than real time and the same seed gives the same sessions. The person
reacts to what the kiosk says. Empty scenes (the room, sometimes a passer-by) must give no
screening at all.

Honest by construction: `simulate_runs` takes a CV run folder (`mpox train --cv`) and plays
each fold's held-out photos to that fold's own model, which never saw them.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from edge import synthetic
from edge.capture import Frame
from edge.config import KioskConfig
from edge.contract import MPOX_LABEL, OTHER_LABEL
from edge.decision import Outcome, State, outcome_of
from edge.engine import Engine
from edge.errors import ImageError, KioskError, ModelError
from edge.hazards import HAZARDS
from edge.images import IMAGE_SUFFIXES, read_image
from edge.kiosk import Kiosk
from edge.models import compile_settings
from edge.quality import box_pixels
from edge.scene import SceneWatch
from edge.sources.demo import SCRIPT_FPS, DemoSource  # the demo's cycle, drawn as `make run` draws it
from edge.visits import VisitCamera, VisitPlan, plan_empty, plan_hard_empty, plan_visit

log = logging.getLogger(__name__)
FOLD_MODEL = "model.xml"  # the float IR, as the kiosk runs by default; `mpox quantize-cv --save` writes it (and model-int8.xml)


@dataclass(frozen=True)
class SimSettings:
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    sessions: int = 40  # visits per fold (or in all, for simulate_images)
    empty: int = 10  # empty scenes per fold
    empty_s: float = 10.0
    seed: int = 0
    lead_in_s: float | None = None  # empty room before each approach; None: as drawn per visit (1.5-3 s)
    hard_empty: int = 1  # hard empty scenes of each kind (edge/hazards.py: light, shadows, shake, passers-by) per fold
    hard_empty_s: float = 15.0


@dataclass(frozen=True)
class SessionResult:
    kind: str  # "visit" or "empty"
    picture: str  # the photo's path ("" for an empty scene)
    label: str  # its true class ("" for an empty scene)
    outcome: Outcome | None  # the first screening's; None: no result
    screenings: int
    to_result_s: float | None  # from the start of the hold to the first result
    wall: str
    coverage: float
    fold: int = -1
    probabilities: dict[str, float] | None = None  # the first screening's (its frames' mean), to study decision rules
    hazard: str = ""  # a hard empty scene's kind (edge/hazards.py)
    hold_verdicts: dict[str, int] = field(default_factory=dict)  # the gate's verdicts while held, before any result: why none came

    @property
    def correct(self) -> bool:
        return self.outcome == outcome_of(self.label)


def kiosk_engine(xml: Path | str, cfg: KioskConfig) -> Engine:
    """A model compiled as the kiosk compiles it (the config's device, precision and threads),
    without the kiosk's checksum check: a fold's model has no SHA256SUMS."""
    return Engine(xml, cfg.model.device, compile_settings(cfg.model))


def run_session(engine: Engine, cfg: KioskConfig, plan: VisitPlan, settings: SimSettings, label: str = "",
                picture: str = "", snapshot: list | None = None) -> SessionResult:
    """One visit (or empty scene) through a fresh Kiosk on the simulated clock. With
    `snapshot` (a list), the frame one second into the hold is appended, with the box and
    the region the kiosk classified drawn on it."""
    camera = VisitCamera(plan, settings.width, settings.height, cfg.quality.box, settings.fps)
    kiosk = Kiosk(cfg, engine=engine)
    first, to_result, probabilities, count, i = None, None, None, 0, 0
    verdicts: Counter[str] = Counter()
    try:
        t = 0.0
        while t < camera.end:
            image = camera.frame(t)
            screening = kiosk.process(Frame(image, t, i))
            if first is None and camera.hold_start() <= t < camera.hold_end():
                verdicts[kiosk.status.verdict.value] += 1
            if screening is not None:
                count += 1
                if first is None:
                    first, to_result, probabilities = screening.outcome, t - camera.hold_start(), screening.probabilities
            camera.react(t, kiosk.status.verdict, kiosk.machine.state == State.RESULT)
            if snapshot is not None and plan.picture is not None and abs(t - camera.hold_start() - 1.0) < 0.5 / settings.fps:
                snapshot.append(annotate(image, kiosk.roi(image.shape[1], image.shape[0]), kiosk.status.region))
            i += 1
            t = i / settings.fps
    finally:
        kiosk.store.close()
    kind = "visit" if plan.picture is not None else "empty"
    return SessionResult(kind, picture, label, first, count, to_result, plan.wall, plan.coverage if kind == "visit" else 0.0,
                         probabilities=probabilities, hold_verdicts=dict(verdicts), hazard="" if plan.hazard == "none" else plan.hazard)


def annotate(image: np.ndarray, box, region) -> np.ndarray:
    out = image.copy()
    x, y, w, h = box
    cv2.rectangle(out, (x, y), (x + w, y + h), (80, 220, 80), 3)
    if region is not None:
        x, y, w, h = region
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 210, 255), 3)
    return out


def visit_plan(image: np.ndarray, rng: np.random.Generator, settings: SimSettings) -> VisitPlan:
    """A visit of `image`, with settings.lead_in_s of empty room before the approach when
    given (drawn all the same, so the sessions differ in their lead-in only)."""
    plan = plan_visit(image, rng)
    return plan if settings.lead_in_s is None else replace(plan, empty_s=settings.lead_in_s)


def simulate_images(engine: Engine, cfg: KioskConfig, pictures: list[tuple[str, str, np.ndarray]], settings: SimSettings,
                    rng: np.random.Generator, snapshot: list | None = None) -> list[SessionResult]:
    """settings.sessions visits of photos drawn from `pictures` ((path, label, BGR image)),
    then settings.empty empty scenes, all with one model."""
    results = []
    order = rng.permutation(len(pictures))
    for n in range(settings.sessions):
        path, label, image = pictures[order[n % len(order)]]
        results.append(run_session(engine, cfg, visit_plan(image, rng, settings), settings, label, path, snapshot))
    for _ in range(settings.empty):
        results.append(run_session(engine, cfg, plan_empty(rng, settings.empty_s), settings))
    for _ in range(settings.hard_empty):
        for kind in HAZARDS:
            results.append(run_session(engine, cfg, plan_hard_empty(kind, rng, settings.hard_empty_s), settings))
    return results


def summarise(results: list[SessionResult]) -> dict:
    """The per-session figures a screening kiosk is judged by."""
    visits = [r for r in results if r.kind == "visit"]
    empty = [r for r in results if r.kind == "empty"]
    mpox = [r for r in visits if r.label == MPOX_LABEL]
    other = [r for r in visits if r.label != MPOX_LABEL]
    times = np.array([r.to_result_s for r in visits if r.to_result_s is not None])
    share = lambda rows, keep: float(np.mean([keep(r) for r in rows])) if rows else float("nan")  # noqa: E731
    return {
        "sessions": len(visits), "empty_scenes": len(empty),
        "accuracy": share(visits, lambda r: r.correct),
        "mpox_sensitivity": share(mpox, lambda r: r.outcome == Outcome.MPOX),
        "mpox_specificity": share(other, lambda r: r.outcome != Outcome.MPOX),
        "no_result": share(visits, lambda r: r.outcome is None),
        "uncertain": share(visits, lambda r: r.outcome == Outcome.UNCERTAIN),
        "empty_scene_screenings": int(sum(r.screenings for r in empty)),
        "hard_empty_screenings": {k: int(sum(r.screenings for r in empty if r.hazard == k)) for k in sorted({r.hazard for r in empty} - {""})},
        "median_s_to_result": float(np.median(times)) if times.size else float("nan"),
        "p90_s_to_result": float(np.percentile(times, 90)) if times.size else float("nan"),
        "by_class": {c: {"sessions": n, "correct": share([r for r in visits if r.label == c], lambda r: r.correct)}
                     for c, n in sorted(Counter(r.label for r in visits).items())},
        "by_wall": {w: share([r for r in visits if r.wall == w], lambda r: r.correct)
                    for w in sorted({r.wall for r in visits})},
        "by_coverage": {f"{lo:.1f}-{lo + 0.2:.1f}": share([r for r in visits if lo <= r.coverage < lo + 0.2], lambda r: r.correct)
                        for lo in (0.2, 0.4, 0.6, 0.8)},
        "outcomes": dict(Counter(r.outcome.value if r.outcome else "none" for r in visits)),
    }


def fold_pictures(data_dir: Path, fold_dir: Path, dermnet_cache: Path | None = None) -> list[tuple[str, str, np.ndarray]]:
    """The fold's held-out photos, as `mpox train --cv` recorded them; its DermNet photos
    (a run with --other-from) come from dermnet_cache, or are left out with one line."""
    predictions = fold_dir / "test_predictions.npz"
    if not predictions.is_file():
        raise KioskError(f"{predictions} not found: is {fold_dir.parent} a run folder of `mpox train --cv`?")
    with np.load(predictions) as npz:
        if "paths" not in npz:
            raise KioskError(f"{predictions} does not list its images: rerun the fold with this version of `mpox train --cv`")
        paths = [str(p) for p in npz["paths"]]
    own = [p for p in paths if not p.startswith(DERMNET_PREFIX)]
    pictures, _ = read_pictures(Path(data_dir), own)
    if len(own) < len(paths):
        if dermnet_cache is None:
            log.warning("%s: %d DermNet photos left out (give the DermNet cache to play them)", fold_dir.name, len(paths) - len(own))
        else:
            pictures += dermnet_pictures(dermnet_cache, [p.removeprefix(DERMNET_PREFIX) for p in paths if p not in own])
    if not pictures:
        raise KioskError(f"no usable images of {fold_dir.name} under {data_dir}")
    return pictures


DERMNET_PREFIX = "dermnet:"


@functools.lru_cache(maxsize=1)
def _dermnet(cache: Path):
    from training import dermnet  # research may use training; the kiosk never does

    return dermnet, dermnet.load(cache)


def dermnet_pictures(cache: Path, paths: list[str]) -> list[tuple[str, str, np.ndarray]]:
    """(path, class, BGR logo-free photo) of DermNet photos: Measles, or the 'Other' class."""
    dermnet, ds = _dermnet(Path(cache))
    where = {p: i for i, p in enumerate(ds.paths)}
    missing = [p for p in paths if p not in where]
    if missing:
        raise KioskError(f"{missing[0]} is not in the DermNet cache {cache}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return [(DERMNET_PREFIX + p, ds.conditions[where[p]] if ds.conditions[where[p]] == dermnet.MEASLES_LABEL else OTHER_LABEL,
             np.ascontiguousarray(ds.bands[where[p]][:, :, ::-1])) for p in paths]


def read_pictures(data_dir: Path, paths: list[str]) -> tuple[list[tuple[str, str, np.ndarray]], int]:
    """(path, class, BGR image) of each readable DATA/<class>/<image> path, and how many
    could not be read (each logged)."""
    pictures, unreadable = [], 0
    for rel in paths:
        try:
            pictures.append((rel, rel.split("/")[0], read_image(data_dir / rel)))
        except ImageError as e:
            unreadable += 1
            log.warning("skipped %s", e)
    return pictures, unreadable


def fold_thresholds(folds: list[Path]) -> dict[int, float]:
    """Each fold's mpox threshold as the shipped model's is made: the median of the other
    folds' validation-chosen thresholds (`mpox export --threshold-from-cv`), so that no
    fold's own images, and no test image, choose it."""
    own = {}
    for d in folds:
        metrics = d / "metrics.json"
        try:
            own[int(d.name.removeprefix("fold"))] = float(json.loads(metrics.read_text())["mpox_threshold"])
        except (OSError, ValueError, KeyError) as e:
            raise KioskError(f"{metrics}: no mpox threshold ({e}); is the fold finished?") from None
    if len(own) < 2:
        return own
    return {k: float(np.median([t for j, t in own.items() if j != k])) for k in own}


def simulate_runs(run_dir: Path, data_dir: Path, settings: SimSettings, cfg: KioskConfig | None = None,
                  model_file: str = FOLD_MODEL, snapshot: list | None = None, pooled_threshold: bool = True,
                  only_folds: tuple[int, ...] = (), dermnet_cache: Path | None = None) -> dict:
    """Every fold of a CV run (or only_folds): its held-out photos played to its own model,
    at the pooled threshold of the other folds (or, pooled_threshold=False, at the model's own)."""
    folds = sorted(d for d in Path(run_dir).glob("fold*") if d.is_dir())
    if not folds:
        raise KioskError(f"no fold folders in {run_dir}: expected the output of `mpox train --cv`")
    thresholds = fold_thresholds(folds) if pooled_threshold else {}
    results: list[SessionResult] = []
    per_fold = {}
    with tempfile.TemporaryDirectory() as state:
        base = (cfg or KioskConfig()).model_copy(update={"state_dir": Path(state)})
        for fold_dir in folds:
            k = int(fold_dir.name.removeprefix("fold"))
            if only_folds and k not in only_folds:
                continue
            xml = fold_dir / model_file
            if not xml.is_file():
                raise ModelError(f"{xml} not found: make the fold models with `mpox quantize-cv --save` (or pass --model-file)")
            engine = kiosk_engine(xml, base)
            fold_cfg = base
            if k in thresholds:
                fold_cfg = base.model_copy(update={"model": base.model.model_copy(update={"mpox_threshold": thresholds[k]})})
            rng = np.random.default_rng([settings.seed, k])
            rows = [replace(r, fold=k) for r in
                    simulate_images(engine, fold_cfg, fold_pictures(Path(data_dir), fold_dir, dermnet_cache), settings, rng, snapshot)]
            per_fold[k] = summarise(rows)
            log.info("fold %d: %s", k, {m: per_fold[k][m] for m in ("accuracy", "mpox_sensitivity", "no_result",
                                                                       "empty_scene_screenings")})
            results += rows
    return {"settings": asdict(settings), "model_file": model_file, "thresholds": thresholds or "each model's own",
            "summary": summarise(results), "per_fold": per_fold,
            "sessions": [{**asdict(r), "outcome": r.outcome.value if r.outcome else None} for r in results]}


def folder_pictures(data_dir: Path) -> list[tuple[str, str, np.ndarray]]:
    """Every readable photo of an ImageFolder (DATA/<class>/<image>)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise KioskError(f"image folder not found: {data_dir}")
    files = sorted(f for f in data_dir.glob("*/*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    pictures, unreadable = read_pictures(data_dir, [f.relative_to(data_dir).as_posix() for f in files])
    if not pictures:
        raise KioskError(f"no usable images in {data_dir} (expected {data_dir}/<class>/<image>"
                         + (f"; {unreadable} unreadable" if unreadable else "") + ")")
    return pictures


def simulate_folder(data_dir: Path, model: Path, settings: SimSettings, cfg: KioskConfig | None = None,
                    snapshot: list | None = None) -> dict:
    """One model on the photos of an ImageFolder (independent photos, or a smoke test)."""
    pictures = folder_pictures(data_dir)
    cfg = cfg or KioskConfig()
    engine = kiosk_engine(model, cfg)
    if unknown := sorted({label for _, label, _ in pictures} - set(engine.info.labels)):
        raise KioskError(f"classes {', '.join(unknown)} of {data_dir} are not among the model's labels {', '.join(engine.info.labels)}")
    with tempfile.TemporaryDirectory() as state:
        cfg = cfg.model_copy(update={"state_dir": Path(state)})
        results = simulate_images(engine, cfg, pictures, settings, np.random.default_rng(settings.seed), snapshot)
    return {"settings": asdict(settings), "model": str(model), "summary": summarise(results),
            "sessions": [{**asdict(r), "outcome": r.outcome.value if r.outcome else None} for r in results]}


def presence_on_photos(pictures: list[tuple[str, str, np.ndarray]], settings: SimSettings, cfg: KioskConfig | None = None,
                       seed: int = 0) -> dict:
    """Does the scene count each photo as someone showing something when it fills the box?
    Every photo in front of a learned empty scene (walls of every kind in turn, the camera's
    noise and codec), held still: the share present, and the photos that were not."""
    cfg = cfg or KioskConfig()
    rng = np.random.default_rng(seed)
    box = cfg.quality.box
    bx, by, bw, bh = (int(v) for v in (box[0] * settings.width, box[1] * settings.height, box[2] * settings.width,
                                       box[3] * settings.height))
    missed = []
    for n, (path, _, image) in enumerate(pictures):
        wall = synthetic.wall(synthetic.WALL_KINDS[n % len(synthetic.WALL_KINDS)], settings.width, settings.height, rng)
        noise = synthetic.NoiseBank(settings.width, settings.height, 3.0, rng)
        shown = wall.copy()
        synthetic.paste(shown, image, bx + bw / 2, by + bh / 2, min(bw, bh))
        watch, present, t = SceneWatch(cfg.presence), False, 0.0
        for i in range(int((cfg.presence.learn_s + 1.0) * settings.fps)):
            frame = synthetic.codec(noise.add(wall if t <= cfg.presence.learn_s + 0.2 else shown, i), 75)
            present = watch.observe(frame, (bx, by, bw, bh), t).present
            t += 1 / settings.fps
        if not present:
            missed.append(path)
    return {"photos": len(pictures), "present": len(pictures) - len(missed), "missed": missed}


def view_check(engine: Engine, pictures: list[tuple[str, str, np.ndarray]], settings: SimSettings, count: int,
               cfg: KioskConfig | None = None) -> dict:
    """Where the model's accuracy goes between a photo and the kiosk: argmax accuracy on
    `count` photos themselves, on the kiosk's crops of them held in a simulated room without
    camera faults, and with them (exposure and white-balance drift, noise, JPEG); the crops'
    probabilities averaged over the second after the first half second of the hold."""
    cfg = cfg or KioskConfig()
    rng = np.random.default_rng(settings.seed)
    box = box_pixels(cfg.quality.box, settings.width, settings.height)
    labels = list(engine.info.labels)
    right = {"photo": [], "crop without camera faults": [], "crop with camera faults": []}
    for i in rng.permutation(len(pictures))[:count]:
        _, label, image = pictures[i]
        truth = labels.index(label)
        right["photo"].append(int(engine.classify_frame(image).argmax()) == truth)
        plan = plan_visit(image, rng)
        clean = replace(plan, noise=0.0, jpeg=100, gain=(1.0, 0.0, 5.0), white_balance=(1.0, 1.0, 1.0))
        for key, p in (("crop without camera faults", clean), ("crop with camera faults", plan)):
            camera, watch, probs = VisitCamera(p, settings.width, settings.height, cfg.quality.box, settings.fps), SceneWatch(cfg.presence), []
            for n in range(int((camera.hold_start() + 1.5) * settings.fps)):
                t = n / settings.fps
                frame = camera.frame(t)
                view = watch.observe(frame, box, t)
                if t > camera.hold_start() + 0.5 and view.region is not None:
                    probs.append(engine.classify_frame(frame, view.region))
            right[key].append(bool(probs) and int(np.mean(probs, 0).argmax()) == truth)
    return {"photos": len(right["photo"]), **{k: float(np.mean(v)) for k, v in right.items()}}


def demo_room(engine: Engine, hours: float, cfg: KioskConfig | None = None, seed: int = 0, tap_every_s: float = 30.0,
              fps: float = SCRIPT_FPS) -> dict:
    """The demo's own room (edge/sources/demo.py: its visits, played over and over) through the
    real kiosk loop for `hours` of simulated frames, with "I agree" tapped at random (on average
    every tap_every_s, whoever is in front, as a busy kiosk sees it). A screening is a phantom
    when it ends while nobody holds a lesion in the box (outside a visit's hold), or when it is
    a visit's second; the kiosk must also never be stuck."""
    cfg = cfg or KioskConfig()
    source = DemoSource(640, 480, fps, box=cfg.quality.box, seed=seed)
    source.open()
    cameras: dict[int, VisitCamera] = {}
    rng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as state:
        kiosk = Kiosk(cfg.model_copy(update={"state_dir": Path(state)}), engine=engine)
        kiosk.ask_consent()
        next_tap, screened_visit, longest_result, result_since = float(rng.exponential(tap_every_s)), -1, 0.0, None
        try:
            for i in range(int(hours * 3600 * fps)):
                t = i / fps
                n, k = source.visit_number, source.frame_number
                visit = counts["cycles"] * len(source.pictures) + n
                if n not in cameras:
                    cameras[n] = source.visit(n)
                camera = cameras[n]
                if t >= next_tap:
                    kiosk.machine.agree(t)
                    counts["taps"] += 1
                    next_tap = t + float(rng.exponential(tap_every_s))
                screening = kiosk.process(Frame(synthetic.decode(source._next()), t, i))
                if source.visit_number == 0 and source.frame_number == 0:
                    counts["cycles"] += 1
                if screening is not None:
                    counts["screenings"] += 1
                    if camera.phase(k / SCRIPT_FPS) != "hold" or visit == screened_visit:
                        counts["phantoms"] += 1
                        log.warning("phantom screening at %.1f s: visit %d, %s", t, n, camera.phase(k / SCRIPT_FPS))
                    screened_visit = visit
                if kiosk.machine.state == State.RESULT:
                    result_since = t if result_since is None else result_since
                    longest_result = max(longest_result, t - result_since)
                else:
                    result_since = None
        finally:
            kiosk.store.close()
    return {"hours": hours, "frames": int(hours * 3600 * fps), "cycles": counts["cycles"], "taps": counts["taps"],
            "screenings": counts["screenings"], "phantom_screenings": counts["phantoms"],
            "stuck_recoveries": kiosk.machine.recoveries, "longest_result_s": round(longest_result, 1)}
