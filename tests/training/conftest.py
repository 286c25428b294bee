import hashlib

import cv2
import numpy as np
import pytest

from training import dermnet

CLASSES = ["Chickenpox", "Measles", "Monkeypox", "Normal"]
# BGR colours a tiny network can tell apart: synthetic data, not skin.
COLOURS = {"Chickenpox": (40, 160, 40), "Measles": (40, 40, 200), "Monkeypox": (200, 60, 60), "Normal": (170, 170, 170)}


def make_image_folder(root, per_class=6, size=40, seed=0, classes=CLASSES):
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.clip(np.array(COLOURS[name], np.float32) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            cv2.circle(img, tuple(int(v) for v in rng.integers(8, size - 8, 2)), int(rng.integers(3, 8)), (255, 255, 255), -1)
            cv2.imwrite(str(root / name / f"{name.lower()}{i}.png"), img)
    return root


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(tmp_path / "data")


DERMNET_CONDITIONS = ["Orf", "Psoriasis", "Sunburn"]


def draw_logo(img: np.ndarray) -> None:
    """A white striped disc and text where DermNet puts its logo (640x480)."""
    cv2.circle(img, (115, 365), 40, (255, 255, 255), -1)
    cv2.putText(img, "DermNet", (60, 430), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)


def photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, (12, 16, 3)).astype(np.uint8)  # distinct coarse patterns: no accidental twins
    img = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
    draw_logo(img)
    return img


@pytest.fixture
def snapshot(tmp_path):
    """A fake DermNet snapshot (a checkout folder): 3 conditions of 4 photos with the logo, one
    of them reserved and a re-encoded twin of it elsewhere; its pinned list and reserved list."""
    root = tmp_path / "snap"
    n = 0
    for c in DERMNET_CONDITIONS:
        folder = root / dermnet.IMAGES_DIR / c
        folder.mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(folder / f"{c.lower()}-{i}.jpg"), photo(n))
            n += 1
    # the same picture as Orf/orf-0.jpg, re-encoded smaller under another condition
    twin = cv2.resize(cv2.imread(str(root / dermnet.IMAGES_DIR / "Orf" / "orf-0.jpg")), (600, 450))
    cv2.imwrite(str(root / dermnet.IMAGES_DIR / "Sunburn" / "copy.jpg"), cv2.resize(twin, (640, 480)), [cv2.IMWRITE_JPEG_QUALITY, 70])
    pinned = tmp_path / "pinned.sha256"
    dermnet.pin(root, pinned)
    reserved = tmp_path / "reserved.txt"
    rel = f"{dermnet.IMAGES_DIR}/Orf/orf-0.jpg"
    reserved.write_text(f"# reserved\n{hashlib.sha256((root / rel).read_bytes()).hexdigest()}  {rel}\n")
    return root, pinned, reserved
