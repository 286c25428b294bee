"""edge/heatmap.py: class activation maps made into heatmaps, and heatmaps over pictures."""

import numpy as np
import pytest

from edge.heatmap import MAX_ALPHA, class_heatmap, overlay


def test_class_heatmap_is_the_class_evidence_over_the_others_in_0_1_at_the_asked_size():
    cam = np.zeros((3, 4, 4), np.float32)
    cam[:, 0, 0] = 5.0  # raises every class alike: says nothing about which
    cam[1, 2, 3] = 2.0  # class 1's own evidence
    heat = class_heatmap(cam, 1, (40, 60))
    assert heat.shape == (40, 60) and heat.dtype == np.float32 and heat.min() >= 0 and heat.max() <= 1
    peak_y, peak_x = np.unravel_index(heat.argmax(), heat.shape)
    assert (peak_y // 10, peak_x // 15) == (2, 3) and heat[:10, :15].max() == 0
    assert heat.max() >= 0.9  # 1 at the cell centre, which falls between pixels
    assert class_heatmap(cam, 0, (8, 8)).max() == 0  # nothing speaks for class 0 more than for the others
    assert np.array_equal(class_heatmap(cam, 1, (40, 60)), heat)


def test_class_heatmap_refuses_maps_of_the_wrong_shape_or_a_missing_class():
    with pytest.raises(ValueError, match="classes, h, w"):
        class_heatmap(np.zeros((4, 4), np.float32), 0, (8, 8))
    with pytest.raises(ValueError, match="index 3"):
        class_heatmap(np.zeros((3, 4, 4), np.float32), 3, (8, 8))


def test_overlay_colours_the_hot_part_and_leaves_the_cold_part_alone():
    image = np.full((60, 80, 3), 128, np.uint8)
    heat = np.zeros((60, 80), np.float32)
    heat[20:40, 30:50] = 1.0
    out = overlay(image, heat)
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    assert np.array_equal(out[:10], image[:10])  # cold: the picture untouched
    hot = out[30, 40].astype(int)
    assert np.abs(hot - 128).max() > 0.5 * MAX_ALPHA * 100  # hot: visibly coloured
    assert np.array_equal(image, np.full((60, 80, 3), 128, np.uint8))  # the input is not modified


def test_overlay_stretches_a_heatmap_of_another_size_over_the_picture():
    image = np.full((100, 200, 3), 90, np.uint8)
    heat = np.zeros((10, 10), np.float32)
    heat[:, 5:] = 1.0  # the right half
    out = overlay(image, heat)
    assert out.shape == (100, 200, 3)
    assert np.array_equal(out[:, :80], image[:, :80]) and not np.array_equal(out[:, 120:], image[:, 120:])


@pytest.mark.parametrize("image, heat, message", [
    (np.zeros((10, 10), np.uint8), np.zeros((10, 10)), "HxWx3 uint8"),
    (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10)), "HxWx3 uint8"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3)), "2-D"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4)), "non-empty"),
])
def test_overlay_refuses_what_is_not_a_picture_and_a_heatmap(image, heat, message):
    with pytest.raises(ValueError, match=message):
        overlay(image, heat)


def test_overlay_clips_out_of_range_and_nan_heat():
    image = np.full((8, 8, 3), 50, np.uint8)
    heat = np.full((8, 8), np.nan, np.float32)
    heat[0, 0], heat[1, 1] = 7.0, -3.0
    out = overlay(image, heat)
    assert np.array_equal(out[1, 1], image[1, 1]) and np.array_equal(out[4, 4], image[4, 4])
    assert np.array_equal(out[0, 0], overlay(image, np.pad([[1.0]], ((0, 7), (0, 7))))[0, 0])
