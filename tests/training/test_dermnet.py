"""The DermNet cache: a snapshot that is not the pinned one is named, reserved pictures and their
near-duplicates never reach the cache, and the logo is cut off. A small fake snapshot, made here."""

import json

import pytest

from training import dermnet
from training.errors import DataError


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
