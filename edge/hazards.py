"""Hard empty scenes: what a fixed kiosk camera sees that is not a person showing skin.

Each kind is a class of failure for presence (edge/scene.py), drawn with random parameters
from a seed so that a test or the simulator (research/simulate.py) plays many variants:

- light that changes the whole picture or a smooth part of it, multiplicatively: a cloud
  drifting over a window, lights switched off and on, auto-exposure stepping, a tinted wall
  whose white balance drifts, a dark noisy room with mains flicker and rolling-shutter bands;
- light that changes a compact part of it: a soft or hard shadow crossing the wall, that may
  stop for a while (someone standing beside the kiosk);
- the camera itself moving: a shaking camera;
- things that come and go without holding still: a passer-by close to the lens (large, out
  of focus), a hand swept through the box.

A `HazardPlayer` changes a VisitCamera's frames at three points: the scene (light fields
and moving things, before the camera), the camera's exposure and white balance, and the
delivered picture (shake, flicker bands).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge import synthetic

HAZARDS = ("cloud", "lights", "exposure", "white_balance", "dark_flicker", "shake", "shadow", "passer_close", "hand_sweep")


class HazardPlayer:
    def __init__(self, kind: str, width: int, height: int, box_px: tuple[float, float, float, float], duration: float,
                 rng: np.random.Generator) -> None:
        if kind not in HAZARDS:
            raise ValueError(f"unknown hazard {kind!r}; one of {HAZARDS}")
        self.kind, self.width, self.height, self.box, self.duration = kind, width, height, box_px, duration
        self.unit = height / 720  # pixels of a 720-line frame
        self.first = float(rng.uniform(1.0, 2.5))  # the room is seen empty first (a kiosk learns it at start)
        self.p: dict = getattr(self, f"_plan_{kind}")(rng)

    # --- plans: everything random, drawn once ---------------------------------------------
    def _plan_cloud(self, rng):
        return {"depth": rng.uniform(0.3, 0.65), "sigma": rng.uniform(0.25, 0.6) * self.width,
                "cross_s": rng.uniform(4.0, 12.0), "y": rng.uniform(0.2, 0.8) * self.height, "rightward": rng.random() < 0.5}

    def _plan_lights(self, rng):
        switches, t = [], self.first
        while t < self.duration:
            off = rng.uniform(0.7, 3.0)
            switches.append((t, t + off, rng.uniform(0.03, 0.25)))
            t += off + rng.uniform(1.5, 4.0)
        return {"switches": switches}

    def _plan_exposure(self, rng):
        steps, t, level = [], self.first, 1.0
        while t < self.duration:
            level = float(np.clip(level * rng.choice([rng.uniform(0.55, 0.85), rng.uniform(1.2, 1.7)]), 0.35, 2.2))
            steps.append((t, level, rng.uniform(0.0, 0.5)))  # (when, new level, how long the camera takes to get there)
            t += rng.uniform(1.0, 3.0)
        return {"steps": steps}

    def _plan_white_balance(self, rng):
        return {"amplitude": rng.uniform(0.12, 0.3, 3), "period": rng.uniform(2.0, 8.0, 3), "phase": rng.uniform(0, 2 * np.pi, 3)}

    def _plan_dark_flicker(self, rng):
        return {"gain": rng.uniform(0.15, 0.35), "flicker": rng.uniform(0.08, 0.3), "beat_hz": rng.uniform(0.3, 7.0),
                "bands": rng.uniform(0.05, 0.2), "band_px": rng.uniform(40, 160) * self.unit, "band_hz": rng.uniform(0.2, 2.0),
                "noise": synthetic.NoiseBank(self.width, self.height, float(rng.uniform(6.0, 14.0)), rng)}

    def _plan_shake(self, rng):
        return {"amplitude": rng.uniform(2.0, 10.0) * self.unit, "hz": rng.uniform(2.0, 12.0, 4), "phase": rng.uniform(0, 2 * np.pi, 4),
                "bumps": [(float(rng.uniform(self.first, self.duration)), rng.uniform(-25, 25, 2) * self.unit) for _ in range(2)]}

    def _plan_shadow(self, rng):
        bx, by, bw, bh = self.box
        size = rng.uniform(0.35, 1.0) * min(bw, bh)
        angle = rng.uniform(0, 2 * np.pi)
        reach = 0.5 * np.hypot(bw, bh) + size
        centre = np.array([bx + bw / 2, by + bh / 2]) + rng.uniform(-0.2, 0.2, 2) * (bw, bh)
        cross_s = rng.uniform(3.0, 10.0)
        pause_at = rng.uniform(0.3, 0.7)
        return {"factor": rng.uniform(0.4, 0.75), "soft": rng.uniform(1.0, 25.0) * self.unit, "size": size,
                "aspect": rng.uniform(0.4, 1.0), "start": centre - reach * np.array([np.cos(angle), np.sin(angle)]),
                "end": centre + reach * np.array([np.cos(angle), np.sin(angle)]), "cross_s": cross_s,
                "pause_at": pause_at, "pause_s": rng.uniform(0.0, 5.0) if rng.random() < 0.6 else 0.0}

    def _plan_passer_close(self, rng):
        h = int(self.height * rng.uniform(1.2, 2.0))
        w = int(h * rng.uniform(0.35, 0.5))
        body = synthetic.wall("fabric", w, h, rng)
        body = cv2.GaussianBlur(body, (0, 0), max(1.0, 8 * self.unit))  # out of focus, near the lens
        return {"sprite": body, "mask": synthetic.rounded_mask(w, h, 0.4), "cross_s": rng.uniform(0.8, 3.0),
                "y": self.height * rng.uniform(0.3, 0.7), "rightward": rng.random() < 0.5}

    def _plan_hand_sweep(self, rng):
        bx, by, bw, bh = self.box
        side = int(rng.uniform(0.25, 0.6) * min(bw, bh))
        hand = synthetic.skin_patch(side, int(side * 1.4), synthetic.skin_tone(rng), rng)
        sweeps, t = [], self.first
        while t < self.duration:
            sweeps.append((t, rng.uniform(0.3, 1.0), rng.uniform(by + 0.2 * bh, by + 0.8 * bh), rng.random() < 0.5))
            t += rng.uniform(1.5, 4.0)
        return {"sprite": hand, "mask": synthetic.rounded_mask(side, int(side * 1.4), 0.4), "sweeps": sweeps}

    # --- the three stages ------------------------------------------------------------------
    def scene(self, image: np.ndarray, t: float) -> np.ndarray:
        """The room at time t: light fields and things moving through it (uint8 BGR)."""
        k, p = self.kind, self.p
        if k == "cloud":
            u = (t - self.first) / p["cross_s"]
            cx = (-0.5 + 2.0 * u) * self.width if p["rightward"] else (1.5 - 2.0 * u) * self.width
            return _times(image, self._field(lambda x, y: 1 - p["depth"] * np.exp(-((x - cx) ** 2 + (y - p["y"]) ** 2) / (2 * p["sigma"] ** 2))))
        if k == "shadow":
            return self._shadow(image, t)
        if k == "passer_close":
            u = (t - self.first) / p["cross_s"]
            if 0 <= u <= 1:
                w = p["sprite"].shape[1]
                x = -w / 2 + (self.width + w) * (u if p["rightward"] else 1 - u)
                image = image.copy()
                synthetic.paste(image, p["sprite"], x, p["y"], max(p["sprite"].shape[:2]), 0.0, p["mask"])
            return image
        if k == "hand_sweep":
            bx, _, bw, _ = self.box
            for start, took, y, rightward in p["sweeps"]:
                u = (t - start) / took
                if 0 <= u <= 1:
                    x0, x1 = bx - 0.3 * bw, bx + 1.3 * bw
                    x = x0 + (x1 - x0) * (u if rightward else 1 - u)
                    image = image.copy()
                    synthetic.paste(image, p["sprite"], x, y, max(p["sprite"].shape[:2]), 10 * np.sin(6 * u), p["mask"])
                    before = x0 + (x1 - x0) * (max(0.0, u - 0.03) if rightward else 1 - max(0.0, u - 0.03))
                    return synthetic.motion_blur(image, (x - before) / 2, 0.0)
        return image

    def camera(self, t: float) -> tuple[float, np.ndarray]:
        """The camera's exposure gain and white balance (B, G, R) multipliers at time t."""
        k, p = self.kind, self.p
        gain, wb = 1.0, np.ones(3, np.float32)
        if k == "lights":
            for on_at, off_until, level in p["switches"]:
                if on_at <= t < off_until:
                    gain = level
        elif k == "exposure":
            level = 1.0
            for at, new, ramp in p["steps"]:
                if t >= at:
                    level = new if ramp == 0 or t - at >= ramp else level + (new - level) * (t - at) / ramp
            gain = level
        elif k == "white_balance":
            wb = (1 + p["amplitude"] * np.sin(2 * np.pi * t / p["period"] + p["phase"])).astype(np.float32)
        elif k == "dark_flicker":
            gain = p["gain"] * (1 + p["flicker"] * np.sin(2 * np.pi * p["beat_hz"] * t))
        return float(gain), wb

    def picture(self, image: np.ndarray, t: float, frame_number: int) -> np.ndarray:
        """The delivered picture at time t: the camera shaking, rolling-shutter flicker bands."""
        k, p = self.kind, self.p
        if k == "shake" and t >= self.first:
            dx = dy = 0.0
            for i in range(2):
                dx += p["amplitude"] * np.sin(2 * np.pi * p["hz"][i] * t + p["phase"][i]) / 2
                dy += p["amplitude"] * np.sin(2 * np.pi * p["hz"][i + 2] * t + p["phase"][i + 2]) / 2
            for at, (bx, by) in p["bumps"]:
                if at <= t < at + 0.6:
                    decay = np.exp(-(t - at) / 0.15)
                    dx, dy = dx + bx * decay, dy + by * decay
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            return cv2.warpAffine(image, m, (self.width, self.height), borderMode=cv2.BORDER_REFLECT)
        if k == "dark_flicker":
            y = np.arange(self.height, dtype=np.float32)[:, None, None]
            bands = 1 + p["bands"] * np.sin(2 * np.pi * (y / p["band_px"] + p["band_hz"] * t))
            return p["noise"].add(np.clip(image * bands, 0, 255).astype(np.uint8), frame_number)
        return image

    # --- drawing ---------------------------------------------------------------------------
    def _field(self, f) -> np.ndarray:
        """A smooth multiplicative field over the frame, computed on a coarse grid."""
        gw, gh = 64, max(2, round(64 * self.height / self.width))
        x = (np.arange(gw, dtype=np.float32)[None, :] + 0.5) * self.width / gw
        y = (np.arange(gh, dtype=np.float32)[:, None] + 0.5) * self.height / gh
        return cv2.resize(f(x, y).astype(np.float32), (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def _shadow(self, image: np.ndarray, t: float) -> np.ndarray:
        p = self.p
        run = t - self.first
        half = p["cross_s"] * p["pause_at"]
        u = run / p["cross_s"] if run < half else p["pause_at"] if run < half + p["pause_s"] else (run - p["pause_s"]) / p["cross_s"]
        if not 0 <= u <= 1:
            return image
        cx, cy = p["start"] + (p["end"] - p["start"]) * u
        scale = 4  # drawn at a quarter of the size, then smoothed up: a soft edge costs nothing
        mask = np.zeros((self.height // scale + 1, self.width // scale + 1), np.float32)
        axes = (max(1, int(p["size"] / 2 / scale)), max(1, int(p["size"] * p["aspect"] / 2 / scale)))
        cv2.ellipse(mask, (int(cx / scale), int(cy / scale)), axes, 30.0, 0, 360, 1.0, -1)
        mask = cv2.resize(mask, (self.width, self.height), interpolation=cv2.INTER_LINEAR)[: self.height, : self.width]
        mask = cv2.GaussianBlur(mask, (0, 0), p["soft"])
        return _times(image, 1 - (1 - p["factor"]) * mask)


def _times(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.float32) * field[..., None], 0, 255).astype(np.uint8)
