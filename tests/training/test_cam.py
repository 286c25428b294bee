"""The class activation map output: computed in the exported graph (training/cam.py), read by
Engine.explain_frame, kept by int8; the kiosk's classify_frame runs exactly what it ran before."""

import collections
import threading

import cv2
import numpy as np
import openvino as ov
import pytest
import torch

from edge.contract import RT_SECTION, ModelInfo
from edge.engine import Engine
from quantization.quantize import Settings, quantize_model, with_metadata
from training.cam import WithCam
from training.export import parity, to_openvino
from training.models import build_model
from training.train import to_input

SIZE = 128  # the tiny model's input: an 8x8 map of 16-pixel cells
SKIN = (120, 150, 200)  # BGR
LABELS = ("Monkeypox", "Normal")


def skin(rng, h, w):
    return np.clip(np.array(SKIN, np.float32) + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def plant_lesion(img, centre, radius):
    """A lesion-like blob: a pale ring round a dark red core."""
    cv2.circle(img, centre, radius, (200, 210, 235), -1)
    cv2.circle(img, centre, round(radius * 0.7), (40, 40, 130), -1)
    return img


def info_for(name="tiny-blob"):
    return ModelInfo(labels=LABELS, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, input_size=SIZE, name=name, version="0.0.1",
                     mpox_threshold=0.5, data_hash="cd" * 32, parameters=1)


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    """Fast-MpoxNet (ImageNet body) whose Cls Head is trained to tell skin with a lesion
    from plain skin, exported with the cam output, and the same model exported the old way
    (one output) as an older IR."""
    root = tmp_path_factory.mktemp("cam")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the head's steps are tiny: threads only contend
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        labels = np.arange(32) % 2
        pictures = [skin(rng, SIZE, SIZE) for _ in labels]
        for img, label in zip(pictures, labels):
            if label == 0:
                plant_lesion(img, tuple(int(v) for v in rng.integers(20, SIZE - 20, 2)), 13)
        x = to_input(np.ascontiguousarray(np.stack(pictures)[:, :, :, ::-1]))
        model = build_model("fast-mpoxnet", len(LABELS), aux_heads=False).eval()
        with torch.no_grad():
            fused = model.stages(x)[3]
        y = torch.from_numpy(labels)
        opt = torch.optim.AdamW(model.head.parameters(), 1e-2)
        model.head.train()
        for step in range(40):
            batch = torch.from_numpy(np.random.default_rng(step).choice(len(x), 16, replace=False))
            loss = torch.nn.functional.cross_entropy(model.head(fused[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    info = info_for()
    xml = root / "blob.xml"
    ov.save_model(to_openvino(model, info), xml, compress_to_fp16=False)
    old = ov.convert_model(model, example_input=torch.zeros(1, 3, SIZE, SIZE), input=[1, 3, SIZE, SIZE])  # as exported before
    for key, value in info.to_rt_info().items():
        old.set_rt_info(value, [RT_SECTION, key])
    ov.save_model(old, root / "old.xml", compress_to_fp16=False)
    return {"model": model, "xml": xml, "old": root / "old.xml", "root": root, "x": x}


def lesion_frame(seed=5, centre=(40, 110), radius=16):
    """A 320x240 frame of skin with a lesion in the target box ROI = (100, 40, 160, 160), at
    `centre` inside the box."""
    frame = skin(np.random.default_rng(seed), 240, 320)
    plant_lesion(frame, (100 + centre[0], 40 + centre[1]), radius)
    return frame, (100, 40, 160, 160)


def assert_peaks_on_the_lesion(heat, centre, radius):
    yy, xx = np.mgrid[:heat.shape[0], :heat.shape[1]]
    inside = np.hypot(xx - centre[0], yy - centre[1]) <= radius
    peak_y, peak_x = np.unravel_index(heat.argmax(), heat.shape)
    assert np.hypot(peak_x - centre[0], peak_y - centre[1]) <= 1.5 * radius, (peak_x, peak_y)
    assert heat[inside].mean() > 3 * heat[~inside].mean()


@pytest.mark.parametrize("name", ["fast-mpoxnet", "efficientnet-lite0"])
def test_the_wrapper_keeps_the_logits_and_its_maps_are_the_class_gradients(name):
    torch.manual_seed(0)
    model = build_model(name, 4, pretrained=False).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        logits, cam = WithCam(model)(x)
        assert torch.equal(logits, model(x))
    fmap = model.feature_map(x).detach().requires_grad_(True)
    out = torch.nn.Sequential(*model.classifier_layers())(model.pool(fmap))
    assert cam.shape == (2, 4, *fmap.shape[2:])
    for c in range(4):  # Grad-CAM by autograd: weights = the logit's gradient w.r.t. the pooled features
        grad, = torch.autograd.grad(out[:, c].sum(), fmap, retain_graph=True)
        want = torch.einsum("bk,bkhw->bhw", grad.sum((2, 3)), fmap.detach())
        assert torch.allclose(cam[:, c], want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))
    if name == "fast-mpoxnet":  # a linear head: CAM proper, each map's mean + bias is the logit
        assert WithCam(model).method == "CAM"
        assert torch.allclose(cam.mean((2, 3)) + model.head.fc.bias, logits, atol=1e-5)
    else:
        assert WithCam(model).method == "Grad-CAM"


def test_the_ir_has_logits_then_cam_matching_torch_and_says_so(blob):
    ir = ov.Core().read_model(blob["xml"])
    assert [o.get_any_name() for o in ir.outputs] == ["logits", "cam"]
    assert list(ir.outputs[0].shape) == [1, 2] and list(ir.outputs[1].shape) == [1, 2, 8, 8]
    facts = {k: v.astype(str) for k, v in ir.get_rt_info()[RT_SECTION].items()}
    assert facts["cam_output"] == "cam" and facts["cam_method"] == "CAM" and facts["cam_feature_map"] == "160x8x8"
    inputs = blob["x"][:3].contiguous().numpy()
    assert parity(blob["model"], blob["xml"], inputs) < 1e-4
    with torch.no_grad():
        scale = float(WithCam(blob["model"])(blob["x"][:3])[1].abs().max())
    assert parity(blob["model"], blob["xml"], inputs, output=1) < 1e-4 * scale


def test_the_heatmap_peaks_on_a_planted_lesion_and_is_deterministic(blob):
    engine = Engine(blob["xml"])
    assert engine.explains
    for centre in ((40, 110), (120, 45)):
        frame, roi = lesion_frame(centre=centre)
        probs, heat = engine.explain_frame(frame, roi)
        assert engine.label(probs) == "Monkeypox"
        assert heat.shape == (160, 160) and heat.dtype == np.float32
        assert heat.min() >= 0 and 0.95 <= heat.max() <= 1  # 1 at a cell centre, between pixels
        assert_peaks_on_the_lesion(heat, centre, 16)
        again_probs, again = engine.explain_frame(frame, roi)
        assert np.array_equal(again, heat) and np.array_equal(again_probs, probs)
    frame, _ = lesion_frame()
    assert engine.explain_frame(frame)[1].shape == (240, 320)  # no ROI: the whole frame


def test_classify_frame_is_unchanged_and_runs_only_the_logits_graph(blob):
    new, old = Engine(blob["xml"]), Engine(blob["old"])
    frame, roi = lesion_frame()
    np.testing.assert_allclose(new.classify_frame(frame, roi), old.classify_frame(frame, roi), atol=1e-6)
    np.testing.assert_allclose(new.explain_frame(frame, roi)[0], old.classify_frame(frame, roi), atol=1e-5)

    def layers(engine):
        return collections.Counter(op.get_rt_info()["layerType"].astype(str) for op in engine.compiled.get_runtime_model().get_ops())

    assert [o.get_any_name() for o in new.compiled.outputs] == ["logits"]
    assert layers(new) == layers(old)  # the kiosk's per-frame work: the same compiled graph as a one-output IR


def test_an_ir_without_the_cam_output_still_classifies_and_explains_without_a_heatmap(blob):
    engine = Engine(blob["old"])
    frame, roi = lesion_frame()
    assert not engine.explains
    probs, heat = engine.explain_frame(frame, roi)
    assert heat is None and probs.shape == (2,) and engine.label(probs) == "Monkeypox"


def test_explain_runs_beside_the_loops_classify_on_another_thread(blob):
    engine = Engine(blob["xml"])
    frame, roi = lesion_frame()
    want = engine.classify_frame(frame, roi)
    heats, errors = [], []

    def explain():
        try:
            heats.extend(engine.explain_frame(frame, roi)[1] for _ in range(5))
        except Exception as e:  # noqa: BLE001 - reported below: a thread's exception would vanish
            errors.append(e)

    threads = [threading.Thread(target=explain) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(20):
        np.testing.assert_allclose(engine.classify_frame(frame, roi), want, atol=1e-6)
    for t in threads:
        t.join()
    assert not errors and len(heats) == 10 and all(np.array_equal(h, heats[0]) for h in heats)


def test_int8_keeps_the_cam_output_and_its_heatmap(blob):
    calibration = np.stack([x[None] for x in blob["x"].contiguous().numpy()])
    labels = np.arange(len(calibration)) % 2
    int8, report = quantize_model(ov.Core().read_model(blob["xml"]), info_for(), calibration, calibration, labels, calibration,
                                  Settings(subset_size=16, accuracy_control=False))
    xml = blob["root"] / "int8.xml"
    ov.save_model(with_metadata(int8, info_for(), Settings(subset_size=16, accuracy_control=False), report, 16), xml,
                  compress_to_fp16=False)
    ir = ov.Core().read_model(xml)
    assert any(op.get_type_name() == "FakeQuantize" for op in ir.get_ops())
    assert [o.get_any_name() for o in ir.outputs] == ["logits", "cam"] and report["int8"]["accuracy"] == 1.0
    engine = Engine(xml)
    assert engine.explains and engine.info.extra["cam_output"] == "cam" and engine.info.extra["precision"] == "int8"
    frame, roi = lesion_frame()
    probs, heat = engine.explain_frame(frame, roi)
    assert engine.label(probs) == "Monkeypox" and heat.shape == (160, 160)
    assert_peaks_on_the_lesion(heat, (40, 110), 16)
