"""A person's visit to the kiosk, frame by frame as its camera sees it.

An empty scene; the lesion (a photo, on an arm of some skin tone or held up alone) comes in
from a side, growing and blurred by its own motion; it is held in the box for a few seconds,
off centre and with hand tremor; then it leaves. The camera's exposure and white balance
drift, its sensor adds noise and its codec blocks. A person who is told to come closer does,
after a moment. Empty scenes have no lesion, only the room and sometimes a passer-by.

Used by the demo source (so `make run` shows the kiosk's real behaviour) and by the session
simulator (research/simulate.py), which feeds these frames to the real kiosk loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge import synthetic
from edge.hazards import HAZARDS, HazardPlayer
from edge.quality import Verdict

Box = tuple[float, float, float, float]
REACTION_S = 0.7  # told to come closer this long, a person moves
CLOSER_S = 0.6  # and takes this long to do it
CLOSER_EXTRA_HOLD_S = 2.0  # and stays that much longer
READ_S = 1.0  # a result on the screen is read this long before the person goes


@dataclass(frozen=True)
class VisitPlan:
    """Everything random about one visit, drawn once (plan_visit, plan_empty)."""

    picture: np.ndarray | None  # BGR lesion photo; None: an empty scene
    wall: str
    coverage: float  # the photo's share of the largest square the box holds (by area)
    offset: tuple[float, float]  # held position off the box centre, in units of the room left
    angle: float  # degrees
    surround: float  # arm around the photo, as a multiple of its side (1: the photo alone)
    tone: np.ndarray  # the arm's skin tone (BGR)
    side_in: str  # where the lesion comes from: left, right, bottom
    empty_s: float
    approach_s: float
    hold_s: float
    leave_s: float
    after_s: float
    tremor_px: float  # amplitude of the hand tremor, in pixels of a 720-line frame
    gain: tuple[float, float, float]  # exposure: mean, amplitude, period (s)
    white_balance: tuple[float, float, float]  # per-channel gains (B, G, R)
    noise: float  # sensor noise sigma, grey levels
    jpeg: int  # codec quality
    distractor: str  # "none", "face" or "clothing": at the edge of the box from the start
    passer_by: bool = False  # empty scenes: someone walks through
    seed: int = 0  # for the drawing itself (textures, noise)
    hazard: str = "none"  # empty scenes: one of edge.hazards.HAZARDS (light, shadow, shake, passers-by), drawn from seed

    @property
    def duration(self) -> float:
        return self.empty_s + self.approach_s + self.hold_s + self.leave_s + self.after_s


def plan_visit(picture: np.ndarray, rng: np.random.Generator, min_coverage: float = 0.3) -> VisitPlan:
    return VisitPlan(
        picture=picture, wall=synthetic.WALL_KINDS[rng.integers(len(synthetic.WALL_KINDS))],
        coverage=float(rng.uniform(min_coverage, 1.0)), offset=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
        angle=float(rng.uniform(-15, 15)), surround=float(rng.choice([1.0, rng.uniform(1.15, 1.8)], p=[0.3, 0.7])),
        tone=synthetic.skin_tone(rng), side_in=str(rng.choice(["left", "right", "bottom"])),
        empty_s=float(rng.uniform(1.5, 3.0)), approach_s=float(rng.uniform(0.6, 1.5)), hold_s=float(rng.uniform(4.0, 6.0)),
        leave_s=float(rng.uniform(0.5, 1.0)), after_s=float(rng.uniform(1.0, 2.0)), tremor_px=float(rng.uniform(1.0, 5.0)),
        gain=(float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.0, 0.12)), float(rng.uniform(3, 9))),
        white_balance=tuple(float(v) for v in rng.uniform(0.9, 1.1, 3)), noise=float(rng.uniform(1.0, 6.0)),
        jpeg=int(rng.integers(35, 90)), distractor=str(rng.choice(["none", "face", "clothing"], p=[0.6, 0.2, 0.2])),
        seed=int(rng.integers(2**31)),
    )


def plan_empty(rng: np.random.Generator, duration_s: float = 10.0) -> VisitPlan:
    """An empty scene: the room, its light and camera drifting, and half the time someone
    walking through the picture."""
    base = plan_visit(np.zeros((8, 8, 3), np.uint8), rng)
    return replace(base, picture=None, empty_s=duration_s, approach_s=0.0, hold_s=0.0, leave_s=0.0, after_s=0.0,
                   passer_by=bool(rng.random() < 0.5))


def plan_hard_empty(kind: str, rng: np.random.Generator, duration_s: float = 15.0) -> VisitPlan:
    """A hard empty scene (edge/hazards.py): nobody shows anything, but the light, the camera
    or something passing changes the picture. A white-balance drift plays on a tinted wall."""
    if kind not in HAZARDS:
        raise ValueError(f"unknown hazard {kind!r}; one of {HAZARDS}")
    plan = replace(plan_empty(rng, duration_s), passer_by=False, hazard=kind)
    if kind == "white_balance":
        tint = rng.uniform(0.65, 1.35, 3)
        plan = replace(plan, wall="plain", white_balance=tuple(float(v) for v in tint / tint.mean()))
    return plan


@dataclass
class _Person:
    """What a person decides while the kiosk talks to them."""

    told_closer_s: float = 0.0
    closer_from: float | None = None  # when they began to move closer
    scale: float = 1.0  # of the planned held size
    hold_extra: float = 0.0
    last_t: float | None = None


class VisitCamera:
    """The camera's frames of one visit: `frame(t)` at any time t from 0 to plan.duration;
    `react(t, verdict)` tells the person what the kiosk said about the frame at t."""

    def __init__(self, plan: VisitPlan, width: int, height: int, box: Box, fps: float = 15.0, room: np.ndarray | None = None) -> None:
        """`room`: the empty scene to use (a kiosk's camera does not move between visits);
        default: a wall of the plan's kind with its distractor."""
        self.plan, self.width, self.height, self.fps = plan, width, height, fps
        rng = np.random.default_rng(plan.seed)
        bx, by, bw, bh = box[0] * width, box[1] * height, box[2] * width, box[3] * height
        self.box_px = (bx, by, bw, bh)
        if room is None:
            self.scene = synthetic.wall(plan.wall, width, height, rng)
            self._add_distractor(rng)
        else:
            self.scene = room
        self.noise = synthetic.NoiseBank(width, height, plan.noise, rng)
        self.phase_rng = rng.uniform(0, 2 * np.pi, 6)
        unit = height / 720
        self.tremor = plan.tremor_px * unit
        held = np.sqrt(plan.coverage) * min(bw, bh)  # the photo's side when held
        self.sprite, self.sprite_mask = (None, None) if plan.picture is None else self._sprite(plan, held, rng)
        self.held_side = held * plan.surround
        slack_x, slack_y = max(0.0, (bw - held) / 2), max(0.0, (bh - held) / 2)
        self.target = (bx + bw / 2 + plan.offset[0] * slack_x, by + bh / 2 + plan.offset[1] * slack_y)
        self.person = _Person()
        self.walker = self._walker(rng) if plan.passer_by else None
        self.hazard = None if plan.hazard == "none" else \
            HazardPlayer(plan.hazard, width, height, self.box_px, plan.duration, np.random.default_rng([plan.seed, 1]))

    # --- the scene -------------------------------------------------------------------------

    def _add_distractor(self, rng: np.random.Generator) -> None:
        bx, by, bw, bh = (int(v) for v in self.box_px)
        if self.plan.distractor == "face":
            r = int(bh * 0.22)
            cx = bx + (-r // 3 if rng.random() < 0.5 else bw + r // 3)
            cy = by + int(rng.uniform(0.1, 0.4) * bh)
            cv2.ellipse(self.scene, (cx, cy), (int(r * 0.8), r), 0, 0, 360, synthetic.skin_tone(rng).tolist(), -1)
            cv2.ellipse(self.scene, (cx, cy - r // 2), (int(r * 0.85), r // 2), 0, 180, 360, (30, 30, 40), -1)
        elif self.plan.distractor == "clothing":
            fabric = synthetic.wall("fabric", bw, bh // 4, rng)
            self.scene[by + bh - bh // 8:by + bh - bh // 8 + bh // 4, bx:bx + bw] = fabric[:self.height - (by + bh - bh // 8)]

    def _sprite(self, plan: VisitPlan, held: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The lesion as held: the photo on a patch of arm (or alone), at the held size."""
        s = max(8, int(held))
        photo = cv2.resize(plan.picture, (s, s), interpolation=cv2.INTER_AREA if s < plan.picture.shape[0] else cv2.INTER_LINEAR)
        if plan.surround <= 1.0:
            return photo, synthetic.rounded_mask(s, s, 0.05)
        side = int(s * plan.surround)
        arm = synthetic.skin_patch(side, side, plan.tone, rng)
        synthetic.paste(arm, photo, side / 2, side / 2, s, 0.0, synthetic.rounded_mask(s, s, 0.15))
        return arm, synthetic.rounded_mask(side, side, 0.3)

    def _walker(self, rng: np.random.Generator) -> dict:
        h = int(self.height * rng.uniform(0.8, 1.1))
        w = int(h * 0.45)
        body = synthetic.wall("fabric", w, h, rng)
        mask = synthetic.rounded_mask(w, h, 0.3)
        head = (w // 2, int(h * 0.12))
        cv2.ellipse(body, head, (int(w * 0.22), int(h * 0.1)), 0, 0, 360, synthetic.skin_tone(rng).tolist(), -1)
        start = float(rng.uniform(1.0, max(1.5, self.plan.duration - 3.0)))
        return {"sprite": body, "mask": mask, "start": start, "cross_s": float(rng.uniform(1.2, 2.5)),
                "y": self.height * rng.uniform(0.45, 0.65), "rightward": bool(rng.random() < 0.5)}

    # --- where the lesion is ---------------------------------------------------------------

    def phase(self, t: float) -> str:
        for name, end in (("empty", self.plan.empty_s), ("approach", self.hold_start()), ("hold", self.hold_end()),
                          ("leave", self.hold_end() + self.plan.leave_s)):
            if t < end:
                return name
        return "after"

    def hold_start(self) -> float:
        return self.plan.empty_s + self.plan.approach_s

    def hold_end(self) -> float:
        """When the person starts to leave: as planned, later if they moved closer, sooner
        once they have read a result."""
        return self.hold_start() + self.plan.hold_s + self.person.hold_extra

    @property
    def end(self) -> float:
        """The end of the visit's frames (the plan's duration, moved as the hold moved)."""
        return self.hold_end() + self.plan.leave_s + self.plan.after_s

    def _pose(self, t: float) -> tuple[float, float, float, float] | None:
        """(cx, cy, side, angle) of the held sprite at time t, or None when out of view."""
        p, e = self.plan, self.person
        name = self.phase(t)
        if name in ("empty", "after") or self.sprite is None:
            return None
        scale = e.scale
        if e.closer_from is not None:
            grow = min(1.0, (t - e.closer_from) / CLOSER_S)
            scale = 1.0 + (e.scale - 1.0) * grow
        side = self.held_side * scale
        tx, ty = self.target
        outside = {"left": (-side, ty), "right": (self.width + side, ty), "bottom": (tx, self.height + side)}[p.side_in]
        if name == "approach":
            u = (t - p.empty_s) / p.approach_s
            u = 1 - (1 - u) ** 2  # slows down on arrival
        elif name == "leave":
            u = 1 - (t - self.hold_end()) / p.leave_s
            u = u * u
        else:
            u = 1.0
        cx = outside[0] + (tx - outside[0]) * u
        cy = outside[1] + (ty - outside[1]) * u
        side *= 0.5 + 0.5 * u  # farther away while coming and going
        ph = self.phase_rng
        cx += self.tremor * (0.6 * np.sin(2 * np.pi * 5.3 * t + ph[0]) + 0.4 * np.sin(2 * np.pi * 8.1 * t + ph[1]) +
                             1.5 * np.sin(2 * np.pi * 0.4 * t + ph[2]))
        cy += self.tremor * (0.6 * np.sin(2 * np.pi * 4.7 * t + ph[3]) + 0.4 * np.sin(2 * np.pi * 7.4 * t + ph[4]) +
                             1.5 * np.sin(2 * np.pi * 0.3 * t + ph[5]))
        return cx, cy, side, p.angle + 0.8 * np.sin(2 * np.pi * 0.5 * t + ph[0])

    # --- the camera ------------------------------------------------------------------------

    def frame(self, t: float) -> np.ndarray:
        """The uint8 BGR frame the camera delivers at time t."""
        return synthetic.decode(self.encoded(t))

    def encoded(self, t: float) -> bytes:
        """The frame at time t as the camera's codec sends it (JPEG): frame(t) is its decoding."""
        p = self.plan
        image = self.scene.copy()
        if self.hazard is not None:
            image = self.hazard.scene(image, t)
        if self.walker is not None:
            self._draw_walker(image, t)
        pose = self._pose(t)
        if pose is not None:
            cx, cy, side, angle = pose
            synthetic.paste(image, self.sprite, cx, cy, side, angle, self.sprite_mask)
            before = self._pose(t - 1.0 / self.fps)
            if before is not None:  # motion blur over half a frame's exposure
                dx, dy = (cx - before[0]) / 2, (cy - before[1]) / 2
                half = int(side * 0.75)
                x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
                x1, y1 = min(self.width, int(cx) + half), min(self.height, int(cy) + half)
                if x1 > x0 and y1 > y0:
                    image[y0:y1, x0:x1] = synthetic.motion_blur(image[y0:y1, x0:x1], dx, dy)
        mean, amplitude, period = p.gain
        gain = mean + amplitude * np.sin(2 * np.pi * t / period)
        white_balance = np.asarray(p.white_balance, np.float32)
        if self.hazard is not None:
            more, tint = self.hazard.camera(t)
            gain, white_balance = gain * more, white_balance * tint
        image = synthetic.camera_look(image, gain, white_balance)
        if self.hazard is not None:
            image = self.hazard.picture(image, t, int(round(t * self.fps)))
        image = self.noise.add(image, int(round(t * self.fps)))
        return synthetic.encode(image, p.jpeg)

    def _draw_walker(self, image: np.ndarray, t: float) -> None:
        w = self.walker
        u = (t - w["start"]) / w["cross_s"]
        if not 0 <= u <= 1:
            return
        span = self.width + w["sprite"].shape[1]
        x = -w["sprite"].shape[1] / 2 + span * (u if w["rightward"] else 1 - u)
        synthetic.paste(image, w["sprite"], x, w["y"], max(w["sprite"].shape[:2]), 0.0, w["mask"])

    # --- the person ------------------------------------------------------------------------

    def react(self, t: float, verdict: Verdict, result_shown: bool = False) -> None:
        """The person hears the kiosk on the frame at t: told to come closer for REACTION_S,
        they move closer (once) and hold a little longer; shown a result, they read it for
        READ_S and go."""
        e = self.person
        dt = 0.0 if e.last_t is None else t - e.last_t
        e.last_t = t
        if self.phase(t) != "hold":
            return
        if result_shown:
            e.hold_extra -= max(0.0, self.hold_end() - (t + READ_S))
            return
        if e.closer_from is not None:
            return
        e.told_closer_s = e.told_closer_s + dt if verdict == Verdict.TOO_FAR else 0.0
        if e.told_closer_s >= REACTION_S:
            e.closer_from = t
            e.scale = min(1.0 / np.sqrt(self.plan.coverage), 1.8)
            e.hold_extra = CLOSER_EXTRA_HOLD_S
