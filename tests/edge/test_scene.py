"""Presence, framing and steadiness (edge/scene.py) on scenes made here: any wall, any skin,
black-and-white photos, light drift, tremor, and things left standing."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import synthetic
from edge.config import PresenceConfig
from edge.scene import SATURATED, SCENE_CHANGED_S, LightGrid, SceneWatch, _light_field, _median, thumbnail

W, H = 640, 360
BOX = (160, 54, 320, 252)  # the default box's pixels at 640x360
DEMO = sorted((Path(__file__).resolve().parents[2] / "edge" / "demo").glob("*.png"))
DT = 1 / 15


def learned(wall: np.ndarray, cfg: PresenceConfig = PresenceConfig()) -> tuple[SceneWatch, float]:  # noqa: B008 - frozen
    """A SceneWatch that has seen `wall` still for longer than learn_s."""
    watch, t = SceneWatch(cfg), 0.0
    for _ in range(int(cfg.learn_s / DT) + 3):
        view = watch.observe(wall, BOX, t)
        t += DT
    assert not view.learning and not view.present
    return watch, t


def held(wall: np.ndarray, picture: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    frame = wall.copy()
    synthetic.paste(frame, picture, cx, cy, side)
    return frame


@pytest.mark.parametrize("kind", synthetic.WALL_KINDS)
def test_an_empty_scene_is_never_present_whatever_the_wall_and_light(kind, rng):
    wall = synthetic.wall(kind, W, H, rng)
    noise = synthetic.NoiseBank(W, H, 4.0, rng)
    watch, t = SceneWatch(PresenceConfig()), 0.0
    first = watch.observe(wall, BOX, t)
    assert first.learning and not first.present  # nothing is judged before the empty scene is known
    for i in range(300):  # 20 s of exposure and white-balance drift, noise and compression
        gain = 1 + 0.2 * np.sin(i / 40)
        frame = synthetic.codec(noise.add(synthetic.camera_look(wall, gain, np.array([1.0, 1 + 0.05 * np.sin(i / 25), 1.0], np.float32)), i), 50)
        t += DT
        assert not watch.observe(frame, BOX, t).present, f"frame {i}"


def test_every_kind_of_photo_arriving_is_present_and_framed(rng):
    skin_wall = synthetic.wall("skin_wall", W, H, rng)
    pictures = [cv2.imread(str(f)) for f in DEMO]
    pictures += [cv2.cvtColor(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for p in pictures[:4]]  # black and white
    for picture in pictures:
        watch, t = learned(skin_wall)
        cx, cy, side = 340.0, 190.0, 180.0
        view = watch.observe(held(skin_wall, picture, cx, cy, side), BOX, t)
        assert view.present and view.region is not None
        x, y, w, h = view.region
        assert x <= cx - side / 2 + 25 and x + w >= cx + side / 2 - 25 and y <= cy - side / 2 + 25 and y + h >= cy + side / 2 - 25
        assert w == h and w < 1.4 * side  # a square around the photo, not the whole box
        assert BOX[0] <= x and x + w <= BOX[0] + BOX[2] and BOX[1] <= y and y + h <= BOX[1] + BOX[3]
        assert 0.3 < view.fill < 0.6


def test_a_photo_filling_the_box_is_present(rng):
    wall = synthetic.wall("plain", W, H, rng)
    watch, t = learned(wall)
    view = watch.observe(held(wall, cv2.imread(str(DEMO[0])), 320, 180, 300), BOX, t)
    assert view.present and view.fill > 0.8


def test_tremor_is_steady_and_an_approach_is_motion(rng):
    wall = synthetic.wall("room", W, H, rng)
    picture = cv2.imread(str(DEMO[1]))
    watch, t = learned(wall)
    cfg = PresenceConfig()
    motions = []
    for i in range(30):  # held with a 2 px tremor
        t += DT
        view = watch.observe(held(wall, picture, 320 + 2 * np.sin(i * 2.1), 180 + 2 * np.cos(i * 1.7), 200), BOX, t)
        motions.append(view.motion)
    assert view.present and max(motions[1:]) < cfg.max_motion
    for i in range(8):  # swept in from the side, 25 px a frame
        t += DT
        view = watch.observe(held(wall, picture, 200 + 25 * i, 180, 200), BOX, t)
        if view.present:
            assert view.motion > cfg.max_motion


def test_something_left_standing_becomes_part_of_the_scene(rng):
    wall = synthetic.wall("wood", W, H, rng)
    cfg = PresenceConfig(relearn_s=2.0)
    watch, t = learned(wall, cfg)
    with_box = held(wall, synthetic.wall("fabric", 100, 100, rng), 320, 180, 150)  # a parcel put down in view
    seen = []
    for _ in range(int(3.0 / DT)):
        t += DT
        seen.append(watch.observe(with_box, BOX, t).present)
    assert seen[0] and not seen[-1]
    # ... but not while someone is being screened
    watch, t = learned(wall, cfg)
    for _ in range(int(3.0 / DT)):
        t += DT
        view = watch.observe(with_box, BOX, t, assessing=True)
    assert view.present


@pytest.mark.parametrize("blank", [(0, 0, 0), (128, 128, 128), (0, 160, 0)])  # black, grey and green warm-up frames
def test_a_blank_field_is_never_learned_as_the_scene(blank, rng):
    """Against a learned black frame the real room would be someone, and be screened."""
    wall = synthetic.wall("plain", W, H, rng)
    watch, t = SceneWatch(PresenceConfig()), 0.0
    for _ in range(int(2.0 / DT)):  # a camera warming up for 2 s
        assert watch.observe(np.full((H, W, 3), blank, np.uint8), BOX, t).learning
        t += DT
    for _ in range(int(1.0 / DT)):  # then the room
        view = watch.observe(wall, BOX, t)
        t += DT
    assert not view.learning and not view.present


def test_lights_switched_are_light_not_someone(rng):
    """Lights switched on (three times brighter) or off: the light field takes the change out,
    nothing is present and the scene stays known."""
    dim = synthetic.wall("room", W, H, rng) // 3
    watch, t = learned(dim)
    for frame in [dim * 3] * 20 + [dim] * 20:
        t += DT
        view = watch.observe(frame, BOX, t)
        assert not view.present and not view.learning


def test_a_changed_scene_is_learned_again(rng):
    """The camera turned to another wall: nearly every cell changed for SCENE_CHANGED_S, with
    no screening under way, is a new scene: it is learned, and then nobody is there."""
    watch, t = learned(synthetic.wall("room", W, H, rng))
    other = synthetic.wall("fabric", W, H, rng)
    seen = []
    for _ in range(int((SCENE_CHANGED_S + 1.0) / DT)):
        t += DT
        seen.append(watch.observe(other, BOX, t))
    assert any(v.learning for v in seen) and not seen[-1].present and not seen[-1].learning


def shade(wall: np.ndarray, factor: float, soft: float, colour=None) -> np.ndarray:
    """The wall with an ellipse in the box darkened by `factor` (a shadow), or painted `colour`."""
    mask = np.zeros(wall.shape[:2], np.float32)
    cv2.ellipse(mask, (320, 180), (90, 70), 20, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), soft)[..., None]
    if colour is None:
        return np.clip(wall * (1 - (1 - factor) * mask), 0, 255).astype(np.uint8)
    return np.clip(wall * (1 - mask) + np.array(colour, np.float32) * mask, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["plain", "wood", "room", "skin_wall"])
@pytest.mark.parametrize("soft", [1.0, 12.0])
def test_a_shadow_standing_still_is_light_but_a_flat_thing_of_its_shape_is_someone(kind, soft, rng):
    """A shadow keeps the wall's colour and texture inside, whatever its edge; a plain arm of
    the same shape, flat too, brings its own colour."""
    wall = synthetic.wall(kind, W, H, rng)
    noise = synthetic.NoiseBank(W, H, 3.0, rng)
    watch, t = learned(wall)
    shadow = shade(wall, 0.55, soft)
    for i in range(int(3.0 / DT)):
        t += DT
        assert not watch.observe(synthetic.codec(noise.add(shadow, i), 70), BOX, t).present, f"frame {i}"
    watch, t = learned(wall)
    arm = shade(wall, 0.0, soft, colour=synthetic.SKIN_TONES[5])
    view = watch.observe(synthetic.codec(noise.add(arm, 0), 70), BOX, t + DT)
    assert view.present and view.region is not None


def test_skin_held_still_close_to_the_lens_is_present_and_stays_screenable(rng):
    """Someone shows a lesion up close: their arm, out of focus, covers the picture well beyond
    the box. That is a visit, present from the first frame, and while it is being screened the
    scene is never learned again, however much of the picture it covers."""
    wall = synthetic.wall("room", W, H, rng)
    watch, t = learned(wall)
    arm = cv2.GaussianBlur(synthetic.skin_patch(W, H, synthetic.SKIN_TONES[3], rng), (0, 0), 8)
    frame = held(arm, cv2.imread(str(DEMO[0])), 320, 180, 200)
    views = []
    for _ in range(int((SCENE_CHANGED_S + 1.0) / DT)):
        t += DT
        views.append(watch.observe(frame, BOX, t, assessing=True))
    assert all(v.present and not v.learning for v in views)


def test_a_short_still_moment_at_start_is_enough_to_learn_the_scene(rng):
    """A recording that opens on a fraction of a second of the empty room, then the approach."""
    wall = synthetic.wall("plain", W, H, rng)
    watch, t = SceneWatch(PresenceConfig()), 0.0
    for _ in range(5):  # a third of a second
        watch.observe(wall, BOX, t)
        t += DT
    view = watch.observe(held(wall, cv2.imread(str(DEMO[0])), 320, 180, 200), BOX, t)
    assert view.present


def test_movement_outside_the_box_does_not_keep_the_kiosk_from_learning(rng):
    """A busy entrance, or an arm coming in from a side: the box is what must be still."""
    wall = synthetic.wall("room", W, H, rng)
    walker = synthetic.wall("fabric", 120, H, rng)
    watch, t = SceneWatch(PresenceConfig()), 0.0
    for i in range(int(0.5 / DT)):
        frame = wall.copy()
        frame[:, 4 * i:120 + 4 * i] = walker  # someone close to the camera, left of the box (it starts at x=160)
        view = watch.observe(frame, BOX, t)
        t += DT
    assert not view.learning and not view.present


def test_a_new_frame_size_starts_learning_again(rng):
    watch, t = learned(synthetic.wall("plain", W, H, rng))
    assert watch.observe(synthetic.wall("plain", 320, 240, rng), (80, 36, 160, 168), t + DT).learning


def test_config_refuses_close_fill_below_min_fill():
    with pytest.raises(ValueError):
        PresenceConfig(min_fill=0.2, close_fill=0.1)


@pytest.mark.parametrize("gw, gh", [(64, 36), (64, 48), (128, 72), (17, 9)])
def test_the_light_field_fitted_on_coarse_cells_is_the_light_on_every_cell(gw, gh, rng):
    """The light (exposure, white balance and a lamp's gradient: a plane in log units per
    channel) is recovered on every thumbnail cell from the coarser fitting grid, with a
    clipped patch and someone's cells (a third of the picture, another colour) left out."""
    reference = rng.uniform(30, 200, (gh, gw, 3)).astype(np.float32)
    grid = LightGrid.of(gw, gh)
    plane = grid.cells @ np.float32([[0.3, 0.1, -0.2], [0.15, -0.1, 0.0], [-0.1, 0.05, 0.2]])
    light = np.exp(plane).reshape(gh, gw, 3)
    thumb = reference * light
    thumb[: gh // 2, : gw // 3] = (250, 250, 250)  # a white poster clipped by the brighter light
    thumb[gh // 2:, gw // 3: 2 * gw // 3] = reference[gh // 2:, gw // 3: 2 * gw // 3, ::-1] * 0.5  # someone
    fitted, measured = _light_field(thumb, thumb > SATURATED, reference, grid)
    assert measured.all()
    assert np.abs(np.log(fitted / light)).max() < 0.03  # (the near-black pad of GAIN_PAD biases dark cells a little)


def test_a_wall_clipped_in_one_channel_stays_empty_however_its_white_balance_drifts(rng):
    """A bright wall whose blue is clipped everywhere hides its real blue: as the white balance
    moves, blue shows values the empty scene never had, and that channel's light cannot be
    measured. A clipped channel is a bound, not a value: nothing is present; a photo shown is."""
    true = synthetic.wall("plain", W, H, rng).astype(np.float32)
    y, x = np.mgrid[0:H, 0:W]
    true[..., 0] += 250 + 70 * np.hypot((x - W / 2) / (W / 2), (y - H / 2) / (H / 2)) / np.sqrt(2) - true[..., 0].min()  # blue over the top everywhere, least in the middle
    noise = synthetic.NoiseBank(W, H, 3.0, rng)

    def look(white_balance, i: int) -> np.ndarray:
        return noise.add(np.clip(true * white_balance, 0, 255).astype(np.uint8), i)

    watch, t = learned(look(np.ones(3, np.float32), 0))
    for i in range(150):  # 10 s: blue down to 0.8, green and red drifting apart by +-10%
        wb = np.float32([1 - 0.2 * np.sin(i / 30) ** 2, 1 + 0.1 * np.sin(i / 17), 1 - 0.1 * np.sin(i / 23)])
        t += DT
        assert not watch.observe(look(wb, i), BOX, t).present, f"frame {i}"
    shown = look(wb, 0)
    synthetic.paste(shown, cv2.imread(str(DEMO[0])), BOX[0] + BOX[2] / 2, BOX[1] + BOX[3] / 2, 0.6 * BOX[3])
    for _ in range(5):
        t += DT
        view = watch.observe(shown, BOX, t)
    assert view.present


@pytest.mark.parametrize("kind", synthetic.WALL_KINDS)
def test_exposure_stepping_up_until_things_clip_then_down_is_light_not_someone(kind, rng):
    """Auto-exposure steps up until the brightest things on the wall clip, stays there (the
    empty scene follows the light meanwhile), then steps down: a clipped channel shows a
    bound, so the scene learns from it only that the wall is at least that bright, or it would
    be too dark there after the step. So does a cell where only some samples clip (a fabric's
    brightest threads): its mean reads darker than the light predicts, and is only a bound."""
    wall = synthetic.wall(kind, W, H, rng)
    noise = synthetic.NoiseBank(W, H, 3.0, rng)
    watch, t = learned(wall)
    grey = np.ones(3, np.float32)
    for i, gain in enumerate([1.7] * 60 + [1.25] * 30 + [1.0] * 30):
        t += DT
        assert not watch.observe(noise.add(synthetic.camera_look(wall, gain, grey), i), BOX, t).present, f"frame {i}, gain {gain}"


@pytest.mark.parametrize("n", [1, 2, 3, 768, 769])
def test_the_light_fit_s_median_is_numpys(n, rng):
    values = rng.normal(size=n).astype(np.float32)
    assert _median(values) == pytest.approx(float(np.median(values)), rel=1e-6)


def test_a_cell_is_a_bound_when_two_of_its_samples_clip_not_one():
    """At 4 x 4 samples a cell (a 256 x 192 frame at the default grid: the samples are its
    pixels), a single clipped sample is as likely noise on a bright wall; two make the cell's
    mean a bound, in that channel only."""
    image = np.full((192, 256, 3), 120, np.uint8)
    image[0, 0, 2] = 255  # cell (0, 0): one red sample clipped
    image[0:2, 4, 2] = 255  # cell (0, 1): two
    image[4:8, 8:12] = 255  # cell (1, 2): all of it, every channel
    means, clipped = thumbnail(image, 64)
    assert means.shape == clipped.shape == (48, 64, 3)
    assert not clipped[0, 0].any()
    assert clipped[0, 1].tolist() == [False, False, True]
    assert clipped[1, 2].all() and clipped.sum() == 4
