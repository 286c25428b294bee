import logging

import numpy as np
import pytest

from training.data import group_near_duplicates, grouped_folds, load_image_folder, validation_split
from training.errors import DataError

from .conftest import CLASSES, make_image_folder


def test_reads_classes_in_order_and_skips_junk_with_one_warning(image_folder, caplog):
    (image_folder / "Measles" / ".DS_Store").write_bytes(b"\0\1junk")
    (image_folder / "Normal" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (image_folder / "Normal" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        ds = load_image_folder(image_folder, size=32)
    assert ds.classes == CLASSES
    assert ds.images.shape == (24, 32, 32, 3) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels).tolist() == [6, 6, 6, 6]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for junk in ("Measles/.DS_Store", "Normal/broken.jpg", "Normal/notes.txt"):
        assert junk in warnings[0].getMessage()


def test_data_hash_changes_with_the_data(image_folder):
    a = load_image_folder(image_folder, size=16).data_hash
    (image_folder / "Normal" / "normal0.png").unlink()
    assert load_image_folder(image_folder, size=16).data_hash != a


def test_empty_missing_and_single_class_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty" / "Normal").mkdir(parents=True)
    with pytest.raises(DataError, match="no readable images"):
        load_image_folder(tmp_path / "empty")
    make_image_folder(tmp_path / "one", per_class=3, classes=["Normal"])
    with pytest.raises(DataError, match="only one class"):
        load_image_folder(tmp_path / "one")


def test_near_duplicates_share_a_group_and_folds_keep_groups_whole(image_folder):
    ds = load_image_folder(image_folder, size=64)
    images = ds.images.copy()
    images[1] = images[0]  # an exact copy
    images[7] = np.roll(images[6], 1, axis=1)  # the same picture shifted by a pixel
    groups = group_near_duplicates(images)
    assert groups[0] == groups[1] and groups[6] == groups[7]
    assert len(set(groups)) >= 20
    folds = grouped_folds(ds.labels, groups, 3, seed=0)
    covered = np.concatenate([te for _, te in folds])
    assert sorted(covered) == list(range(len(ds)))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        assert set(ds.labels[te]) == set(range(4))  # stratified: every class in every fold
    tr, va = validation_split(ds.labels, groups, 0.25, seed=0)
    assert not set(tr) & set(va) and len(tr) + len(va) == len(ds)
