"""Coverage-guided fuzzing of edge._native with atheris (not part of `make test`).

    pip install -e ".[fuzz]" && python tests/fuzz/fuzz_preprocess.py -max_total_time=600

With AddressSanitizer and UBSan (README "Fuzzing"): a venv whose extension is built with
CMAKE_ARGS="-DMPOX_SANITIZE=ON", run with the sanitizer runtimes preloaded.

Every call must either return a finite result or raise ValueError; anything else (a crash,
another exception) is a finding. The numpy reference runs on the same input and must agree
(or raise the same way), which also fuzzes the fallback path.
"""

import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    from edge import preprocess as P  # the public face: argument checks in Python, kernels in C++

_native = P._native  # the C++ kernels themselves are not coverage-instrumented (atheris sees Python)
if _native is None:
    sys.exit("edge._native is not built: nothing to fuzz")


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    h, w, c = fdp.ConsumeIntInRange(0, 64), fdp.ConsumeIntInRange(0, 64), fdp.ConsumeIntInRange(1, 4)
    pixels = np.frombuffer(fdp.ConsumeBytes(h * w * c).ljust(h * w * c, b"\0"), np.uint8)
    frame = pixels.reshape(h, w, c)
    if fdp.ConsumeBool() and w > 1:
        frame = frame[:, ::2]
    # ROIs near the frame, or anywhere in 64 bits (x + w must not overflow past the check)
    if fdp.ConsumeBool():
        roi = tuple(fdp.ConsumeIntInRange(-4, 70) if fdp.ConsumeBool() else fdp.ConsumeInt(8) for _ in range(4))
    else:
        roi = None
    if roi is not None:  # and in any container a caller might use (issue 23: a dict or a generator was a TypeError)
        roi = [tuple, list, np.array, dict.fromkeys, set, str][fdp.ConsumeIntInRange(0, 5)](roi)
    size = fdp.ConsumeIntInRange(-1, 80)
    std = tuple(fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else 0.25 for _ in range(3))  # tiny, huge, negative
    which = fdp.ConsumeIntInRange(0, 5)
    try:
        if which == 0:
            out = _native.preprocess(frame, roi, size, std=std)
            np.testing.assert_allclose(out, P.preprocess_numpy(frame, roi, size, std=std), atol=1e-4, rtol=1e-5)
        elif which == 1:
            out = _native.preprocess_u8(frame, roi, size)
        elif which == 2:
            out = _native.frame_quality(frame, roi)
            out = np.array(list(out.values()))
        else:
            yuv = pixels[: (h // 2 * 2) * (w // 2 * 2) * 3 // 2].reshape(-1, w // 2 * 2) if h > 1 and w > 1 else pixels
            layout = "nv12" if which == 3 else "i420"
            convert = _native.preprocess_yuv if which < 5 else _native.preprocess_yuv_u8
            out = convert(yuv, roi, size, layout=layout)
    except ValueError:
        return
    assert np.isfinite(np.asarray(out, np.float64)).all()


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
