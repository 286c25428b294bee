"""The DermNet cache: a snapshot that is not the pinned one is named, reserved pictures and their
near-duplicates never reach the cache, and the logo is cut off. A small fake snapshot, made here."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from training import dermnet
from training.errors import DataError

CONDITIONS = ["Orf", "Psoriasis", "Sunburn"]


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
    root = tmp_path / "snap"
    n = 0
    for c in CONDITIONS:
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


def build(snapshot, tmp_path):
    root, pinned, reserved = snapshot
    return dermnet.build(root, tmp_path / "cache", reserved, msid=None, pinned=pinned)


def test_reserved_pictures_and_their_twins_stay_out(snapshot, tmp_path):
    manifest = build(snapshot, tmp_path)
    kept = {e["path"].split("/", 2)[2] for e in manifest["images"]}
    dropped = {d["path"].split("/", 2)[2]: d["reason"] for d in manifest["dropped"]}
    assert dropped == {"Orf/orf-0.jpg": "reserved", "Sunburn/copy.jpg": "near-duplicate"}
    assert len(kept) == 11 and "Orf/orf-1.jpg" in kept


def test_the_logo_is_cut_off(snapshot, tmp_path):
    build(snapshot, tmp_path)
    ds = dermnet.load(tmp_path / "cache", snapshot[2])
    assert len(ds.bands) == 11
    for band in ds.bands:
        assert band.shape[0] == dermnet.CACHE_HEIGHT
        assert band.max() < 240  # the photos' own pixels stay below 200; the logo is pure white


def test_a_missing_or_changed_file_is_named(snapshot, tmp_path):
    root, pinned, reserved = snapshot
    victim = root / dermnet.IMAGES_DIR / "Psoriasis" / "psoriasis-2.jpg"
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(DataError, match="Psoriasis/psoriasis-2.jpg differs from the pinned file"):
        dermnet.build(root, tmp_path / "cache", reserved, msid=None, pinned=pinned)
    victim.unlink()
    with pytest.raises(DataError, match="lacks dermnet-output/images/Psoriasis/psoriasis-2.jpg"):
        dermnet.build(root, tmp_path / "cache", reserved, msid=None, pinned=pinned)
    assert not (tmp_path / "cache").exists()


def test_a_reserved_picture_in_the_cache_is_refused(snapshot, tmp_path):
    build(snapshot, tmp_path)
    manifest_path = tmp_path / "cache" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    reserved_line = snapshot[2].read_text().splitlines()[1]
    manifest["images"][0]["sha256"] = reserved_line.split()[0]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="reserved DermNet image in the training cache"):
        dermnet.load(tmp_path / "cache", snapshot[2])


def test_a_changed_cache_file_is_refused(snapshot, tmp_path):
    build(snapshot, tmp_path)
    (tmp_path / "cache" / "images" / "00003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="images/00003.jpg .* is missing or changed"):
        dermnet.load(tmp_path / "cache", snapshot[2])


def test_held_out_conditions_never_include_the_protected_ones():
    protected = {"Orf"}
    splits = {dermnet.split_of(f"x/{c}/a.jpg", protected) for c in protected}
    assert "holdout-condition" not in splits
    many = [dermnet.split_of(f"x/cond{i}/a.jpg", set()) for i in range(400)]
    assert 0.05 < many.count("holdout-condition") / 400 < 0.2
