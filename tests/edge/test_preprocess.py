"""The native kernels against the numpy/OpenCV reference, and their handling of bad input.

Tolerances: the reference does the same float arithmetic (exact area weights), so float
outputs agree to float32 rounding (1e-4 after normalisation, where one uint8 level is ~0.017)
and uint8 outputs differ by at most one level (round-half ties). Against OpenCV's own uint8
INTER_AREA pipeline, whose fixed-point weights round every pixel, 0.02 (about one level).
"""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import preprocess as P

_native = pytest.importorskip("edge._native", reason="native extension not built")

FLOAT_TOL = 1e-4
SIZES = [(1, 1), (3, 5), (5, 3), (2, 224), (224, 224), (225, 223), (480, 640), (223, 1001), (50, 400), (400, 50)]


def frame(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("h,w", SIZES)
def test_float_and_u8_match_reference(rng, h, w):
    f = frame(rng, h, w)
    np.testing.assert_allclose(_native.preprocess(f), P.preprocess_numpy(f), atol=FLOAT_TOL, rtol=0)
    diff = np.abs(_native.preprocess_u8(f).astype(int) - P.preprocess_u8_numpy(f))
    assert diff.max() <= 1


def test_large_frame_to_other_sizes(rng):
    f = frame(rng, 3000, 4000)
    for size in (224, 97, 1):
        np.testing.assert_allclose(_native.preprocess(f, size=size), P.preprocess_numpy(f, size=size), atol=FLOAT_TOL, rtol=0)


def test_matches_opencv_uint8_pipeline_when_shrinking(rng):
    f = frame(rng, 720, 1280)
    resized = cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32) / 255
    expected = ((resized - P.IMAGENET_MEAN) / P.IMAGENET_STD).transpose(2, 0, 1)[None]
    assert np.abs(_native.preprocess(f) - expected).max() < 0.02


def test_roi_and_non_contiguous_views(rng):
    big = frame(rng, 300, 400)
    view = big[10:250, 7:333]  # a slice: rows further apart than its width
    assert not view.flags.c_contiguous
    roi = (3, 0, 323, 240)  # touches the right and top edges of the view
    np.testing.assert_allclose(_native.preprocess(view, roi), P.preprocess_numpy(view, roi), atol=FLOAT_TOL, rtol=0)
    # Strided columns, reversed rows, a channel-reversed view: copied, same answer.
    for odd in (big[:, ::2], big[::-1], big[..., ::-1], np.asfortranarray(big)):
        np.testing.assert_allclose(_native.preprocess(odd, size=31), P.preprocess_numpy(odd, size=31), atol=FLOAT_TOL, rtol=0)
    corner = (399, 299, 1, 1)
    np.testing.assert_allclose(_native.preprocess(big, corner, 4), P.preprocess_numpy(big, corner, 4), atol=FLOAT_TOL, rtol=0)


def test_writes_into_given_output(rng):
    f = frame(rng, 64, 80)
    out = np.zeros((1, 3, 32, 32), np.float32)
    assert _native.preprocess(f, size=32, out=out) is not None
    np.testing.assert_allclose(out, P.preprocess_numpy(f, size=32), atol=FLOAT_TOL, rtol=0)
    out8 = np.zeros((32, 32, 3), np.uint8)
    _native.preprocess_u8(f, size=32, out=out8)
    assert np.abs(out8.astype(int) - P.preprocess_u8_numpy(f, size=32)).max() <= 1


def test_custom_normalisation(rng):
    f = frame(rng, 40, 60)
    kw = dict(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))
    np.testing.assert_allclose(_native.preprocess(f, **kw), P.preprocess_numpy(f, **kw), atol=FLOAT_TOL, rtol=0)


def yuv_frame(rng, h, w):
    return rng.integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["nv12", "i420"])
@pytest.mark.parametrize("h,w,roi", [(2, 2, None), (480, 640, None), (720, 1280, (280, 0, 720, 720)), (10, 14, (3, 1, 7, 9))])
def test_yuv_matches_opencv_conversion(rng, layout, h, w, roi):
    f = yuv_frame(rng, h, w)
    got = _native.preprocess_yuv(f, roi, 56, layout=layout)
    np.testing.assert_allclose(got, P.preprocess_yuv_numpy(f, roi, 56, layout=layout), atol=FLOAT_TOL, rtol=0)
    got8 = _native.preprocess_yuv_u8(f, roi, 56, layout=layout)
    assert np.abs(got8.astype(int) - P.preprocess_yuv_u8_numpy(f, roi, 56, layout=layout)).max() <= 1


def test_yuv_of_a_bgr_picture_looks_like_it(rng):
    bgr = cv2.GaussianBlur(frame(rng, 96, 128), (0, 0), 5)
    nv12_i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    # Colour survives the round trip through 4:2:0 within a few levels.
    assert np.abs(_native.preprocess_yuv_u8(nv12_i420, size=32, layout="i420").astype(int)
                  - _native.preprocess_u8(bgr, size=32)).max() <= 6


@pytest.mark.parametrize("h,w", [(1, 1), (2, 2), (3, 5), (64, 48), (480, 640)])
def test_frame_quality_matches_reference(rng, h, w):
    f = frame(rng, h, w)
    got, want = _native.frame_quality(f), P.frame_quality_numpy(f)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-9), k


def test_frame_quality_tells_what_a_person_would_see(rng):
    dark = np.full((100, 100, 3), 3, np.uint8)
    q = _native.frame_quality(dark)
    assert q["dark_fraction"] == 1.0 and q["brightness"] < 5 and q["sharpness"] == 0.0
    sharp = frame(rng, 100, 100)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert _native.frame_quality(sharp)["sharpness"] > 10 * _native.frame_quality(blurred)["sharpness"]
    skin = np.zeros((50, 50, 3), np.uint8)
    skin[:] = (120, 150, 210)  # BGR of a light skin tone
    assert _native.frame_quality(skin)["skin_fraction"] == 1.0
    assert _native.frame_quality(skin, (0, 0, 10, 10))["skin_fraction"] == 1.0
    blue = np.zeros_like(skin)
    blue[:] = (200, 60, 20)
    assert _native.frame_quality(blue)["skin_fraction"] == 0.0


# --- bad input: a ValueError naming the problem, never a crash -----------------------

BAD_CALLS = [
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.float32)), "uint8"),
    (lambda m: m.preprocess(np.zeros((4, 4), np.uint8)), "HxWx3"),
    (lambda m: m.preprocess(np.zeros((4, 4, 4), np.uint8)), "HxWx3"),
    (lambda m: m.preprocess(np.zeros((0, 4, 3), np.uint8)), "empty"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), (-1, 0, 2, 2)), "outside"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), (3, 3, 2, 2)), "outside"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), (0, 0, 0, 2)), "positive"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), (0, 0, 2)), "roi"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), (0.5, 0, 2, 2)), "roi"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), size=0), "size"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), std=(1, 0, 1)), "std"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), size=8, out=np.zeros((1, 3, 8, 8), np.float64)), "out"),
    (lambda m: m.preprocess(np.zeros((4, 4, 3), np.uint8), size=8, out=np.zeros((1, 3, 8, 9), np.float32)), "out"),
    (lambda m: m.preprocess_u8(np.zeros((4, 4, 3), np.uint8), size=8, out=np.zeros((8, 8, 3), np.uint8)[::-1]), "contiguous"),
    (lambda m: m.preprocess_yuv(np.zeros((5, 4), np.uint8)), "even"),
    (lambda m: m.preprocess_yuv(np.zeros((6, 4, 1), np.uint8)), "2-D"),
    (lambda m: m.preprocess_yuv(np.zeros((6, 4), np.uint8), layout="yuyv"), "layout"),
    (lambda m: m.preprocess_yuv(np.zeros((6, 4), np.uint8), (0, 0, 4, 5)), "outside"),
    (lambda m: m.preprocess_yuv(np.zeros((6, 8), np.uint8)[:, ::2], layout="nv12"), "contiguous"),
    (lambda m: m.frame_quality(np.zeros((4, 4, 3), np.int16)), "uint8"),
    # x + w overflows a 64-bit integer: must be refused, not wrapped round into a read outside the frame
    *[(lambda m, f=f, roi=roi: getattr(m, f)(np.zeros((6, 4, 3) if "yuv" not in f else (6, 4), np.uint8), roi), "outside")
      for f in ("preprocess", "preprocess_u8", "frame_quality", "preprocess_yuv", "preprocess_yuv_u8")
      for roi in ((2**63 - 2, 0, 2**62, 2), (1, 2**63 - 1, 2, 2**63 - 1), (2, 0, 2**63 - 1, 1))],
]


def claimed(shape: tuple[int, ...]) -> np.ndarray:
    """A frame claiming any size over one real pixel (zero strides): what a hostile caller can pass."""
    return np.lib.stride_tricks.as_strided(np.full(3, 255, np.uint8), shape=shape, strides=(0,) * (len(shape) - 1) + (1,))


# Issue 23's hostile battery, by class: every argument of every entry point is checked at the
# boundary, whatever its type, so each bad one is a ValueError, never a TypeError, a NaN or a
# raw C++ message.
ENTRY_POINTS = {"preprocess": (6, 4, 3), "preprocess_u8": (6, 4, 3), "frame_quality": (6, 4, 3), "preprocess_yuv": (6, 4),
                "preprocess_yuv_u8": (6, 4)}
NOT_AN_ROI = [{"x": 0, "y": 0, "w": 1, "h": 1}, {0: 0, 1: 0, 2: 1, 3: 1}, {0, 1, 2, 3}, "abcd", b"\0\0\1\1",
              bytearray(4), (0, 0, 1.0, 1), (0, 0, True, 1), (0, 0, "1", 1), np.zeros((4, 1), int), np.float64(1), 4]
HOSTILE_CALLS = [
    *[(lambda m, f=f, roi=roi, shape=shape: getattr(m, f)(np.zeros(shape, np.uint8), roi), "roi")
      for f, shape in ENTRY_POINTS.items() for roi in NOT_AN_ROI],
    *[(lambda m, f=f, shape=shape: getattr(m, f)(np.zeros(shape, np.uint8), (i for i in (0, 0, 2, 2))), "roi")  # a generator
      for f, shape in ENTRY_POINTS.items()],
    *[(lambda m, f=f, std=std: getattr(m, f)(np.zeros(ENTRY_POINTS[f], np.uint8), std=std), "std")
      for f in ("preprocess", "preprocess_yuv")
      for std in ((1e-45, 1, 1), (1e-39, 1, 1), (1e-7, 1, 1), (-0.2, 0.2, 0.2), (float("nan"), 1, 1), (1e39, 1, 1), (1, 1),
                  "abc", None, {"r": 1, "g": 1, "b": 1})],
    *[(lambda m, f=f, mean=mean: getattr(m, f)(np.zeros(ENTRY_POINTS[f], np.uint8), mean=mean), "mean")
      for f in ("preprocess", "preprocess_yuv")
      for mean in ((float("inf"), 0, 0), (1e39, 0, 0), (0, 0), None, (3e38, 0, 0))],
    *[(lambda m, f=f, size=size: getattr(m, f)(np.zeros(ENTRY_POINTS[f], np.uint8), size=size), "size")
      for f in ("preprocess", "preprocess_u8", "preprocess_yuv", "preprocess_yuv_u8")
      for size in (8.0, "8", None, True, 2**31, 2**63, -(2**63) - 1, [8])],
    *[(lambda m, f=f, layout=layout: getattr(m, f)(np.zeros((6, 4), np.uint8), layout=layout), "layout")
      for f in ("preprocess_yuv", "preprocess_yuv_u8") for layout in (None, 12, b"nv12")],
    *[(lambda m, f=f, out=out: getattr(m, f)(np.zeros(ENTRY_POINTS[f], np.uint8), out=out), "out")
      for f in ("preprocess", "preprocess_u8") for out in ([0.0] * 3, "out", 1)],
    *[(lambda m, f=f, frame=frame: getattr(m, f)(frame), "frame") for f in ENTRY_POINTS
      for frame in ([[1, 2, 3]], None, "frame", b"\0" * 12)],
    # sides beyond int arithmetic: refused, not truncated (2^32 + 2 rows is not 2 rows) nor a C++ message
    *[(lambda m, f=f, shape=shape: getattr(m, f)(claimed(shape)), "sides")
      for f in ("preprocess", "preprocess_u8", "frame_quality") for shape in ((1, 2**31, 3), (2**32 + 2, 1, 3), (2, 2**28, 3))],
    *[(lambda m, f=f: getattr(m, f)(claimed((3 * 2**31, 2))), "sides") for f in ("preprocess_yuv", "preprocess_yuv_u8")],
    (lambda m: m.frame_quality(claimed((2**20, 2**20, 3))), "pixels"),  # each side fits, the area does not
]


@pytest.mark.parametrize("call,words", HOSTILE_CALLS)
@pytest.mark.parametrize("impl", ["native", "numpy"])
def test_hostile_arguments_are_one_value_error(call, words, impl):
    with pytest.raises(ValueError, match=words):
        call(_native if impl == "native" else NUMPY)


def test_a_very_wide_row_keeps_its_brightness():
    """A row of 9 million pixels (issue 23 saw a brightness of -222: an int32 sum overflowed)."""
    wide = np.full((2, 9_000_000, 3), 255, np.uint8)
    q = _native.frame_quality(wide)
    assert q["brightness"] == 255.0 and q["bright_fraction"] == 1.0
    wide[1] = 0
    assert _native.frame_quality(wide)["brightness"] == 127.5


def test_sequences_of_integers_are_rois_whatever_their_type(rng):
    f = frame(rng, 10, 12)
    want = _native.preprocess(f, (1, 2, 5, 6), 4)
    for roi in ([1, 2, 5, 6], np.array([1, 2, 5, 6]), np.array([1, 2, 5, 6], np.int16), (np.int64(1), 2, 5, np.uint8(6))):
        for m in (_native, NUMPY):
            np.testing.assert_allclose(m.preprocess(f, roi, 4), want, atol=FLOAT_TOL, rtol=0)


@st.composite
def any_roi(draw):
    """Anything a caller might pass as an ROI: the right thing, or a near miss in type or value."""
    value = st.one_of(st.integers(-2, 12), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2), st.none())
    items = draw(st.lists(value, min_size=0, max_size=5))
    wrap = draw(st.sampled_from([tuple, list, np.array, dict.fromkeys, set, iter, str, lambda v: v]))
    try:
        return wrap(items)
    except (TypeError, ValueError):
        return items


@settings(max_examples=500, deadline=None)
@given(any_roi())
def test_any_roi_is_processed_by_both_or_refused_by_both(roi):
    f = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    outcomes = []
    for m in (_native, NUMPY):
        try:
            outcomes.append(m.frame_quality(f, roi))
        except ValueError:
            outcomes.append(None)
        if isinstance(roi, type(iter(()))):
            return  # a generator (refused) is spent after the first call
    assert (outcomes[0] is None) == (outcomes[1] is None), roi
    if outcomes[0] is not None:
        assert outcomes[0] == pytest.approx(outcomes[1])


NUMPY = SimpleNamespace(
    preprocess=P.preprocess_numpy, preprocess_u8=P.preprocess_u8_numpy, preprocess_yuv=P.preprocess_yuv_numpy,
    preprocess_yuv_u8=P.preprocess_yuv_u8_numpy, frame_quality=P.frame_quality_numpy,
)


@pytest.mark.parametrize("call,words", BAD_CALLS)
@pytest.mark.parametrize("impl", ["native", "numpy"])
def test_bad_input_raises_value_error(call, words, impl):
    with pytest.raises(ValueError, match=words):
        call(_native if impl == "native" else NUMPY)


@st.composite
def frames_and_rois(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    base = np.arange(h * w * 3 * 2, dtype=np.uint64).astype(np.uint8).reshape(h, w * 2, 3)
    step = draw(st.sampled_from([1, 2]))
    arr = base[:, ::step][:, :w]
    if draw(st.booleans()):
        arr = arr[::-1]
    near = st.integers(-3, max(w, h) + 3)
    anywhere = st.integers(-(2**63), 2**63 - 1)  # sums of these overflow 64 bits
    x, y, rw, rh = (draw(st.one_of(near, anywhere) if draw(st.integers(0, 9)) == 0 else near) for _ in range(4))
    size = draw(st.integers(0, 64))
    return arr, (x, y, rw, rh), size


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_and_rois())
def test_random_shapes_strides_and_rois_never_crash(case):
    arr, roi, size = case
    h, w = arr.shape[:2]
    x, y, rw, rh = roi
    roi_valid = 0 <= x and 0 <= y and rw > 0 and rh > 0 and x + rw <= w and y + rh <= h
    valid = roi_valid and 1 <= size
    calls = [(lambda m=m, f=f: getattr(m, f)(arr, roi, size), valid) for m in (_native, NUMPY) for f in ("preprocess", "preprocess_u8")]
    calls += [(lambda m=m: m.frame_quality(arr, roi), roi_valid) for m in (_native, NUMPY)]
    for fn, ok in calls:  # processed by both, or refused by both: never a crash, never a wrong answer
        if ok:
            out = fn()
            assert np.isfinite(np.asarray(list(out.values()) if isinstance(out, dict) else out, np.float32)).all()
        else:
            with pytest.raises(ValueError):
                fn()
    if valid:
        np.testing.assert_allclose(_native.preprocess(arr, roi, size), P.preprocess_numpy(arr, roi, size), atol=FLOAT_TOL, rtol=0)


def test_public_face_uses_native_and_falls_back_to_numpy(rng, monkeypatch, caplog):
    f = frame(rng, 30, 40)
    assert P.BACKEND == "native"
    native = P.preprocess(f, size=8)
    monkeypatch.setattr(P, "_native", None)
    np.testing.assert_allclose(P.preprocess(f, size=8), native, atol=FLOAT_TOL, rtol=0)
    assert P.frame_quality(f) == pytest.approx(_native.frame_quality(f))
