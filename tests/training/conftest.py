import cv2
import numpy as np
import pytest

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
