"""Skin pretraining on a small fake DermNet cache: it resumes where it stopped, its backbone
becomes the teacher's and Fast-MpoxNet's body, and DermNet's photos join MSID's classes."""

import numpy as np
import torch

from training import dermnet, skin
from training.data import grouped_folds
from training.experiment import dataset_folds, prepare
from training.train import TrainConfig, build


def cache(snapshot, tmp_path):
    root, pinned, reserved = snapshot
    dermnet.build(root, tmp_path / "cache", reserved, msid=None, pinned=pinned)
    return tmp_path / "cache", reserved


def test_pretraining_resumes_and_gives_both_models_its_backbone(snapshot, tmp_path):
    torch.set_num_threads(2)
    cache_dir, reserved = cache(snapshot, tmp_path)
    cfg = skin.SkinConfig(epochs=1, batch_size=4, min_images=2)
    first = skin.pretrain(cache_dir, tmp_path / "run", cfg, reserved)
    assert len(first["epochs"]) == 1 and first["conditions"] == ["Orf", "Psoriasis", "Sunburn"][: len(first["conditions"])]
    second = skin.pretrain(cache_dir, tmp_path / "run", skin.SkinConfig(epochs=2, batch_size=4, min_images=2), reserved)
    assert second["epochs"][0] == first["epochs"][0]  # epoch 1 was not trained again
    assert len(second["epochs"]) == 2
    assert "resuming after epoch 1" in (tmp_path / "run" / "log.txt").read_text()

    saved = torch.load(tmp_path / "run" / "skin-lite0.pt", weights_only=False)["backbone"]
    teacher = build(TrainConfig(model="efficientnet-lite0", skin=str(tmp_path / "run" / "skin-lite0.pt")), 5)
    assert torch.equal(teacher.backbone._blocks[6].state_dict()["_depthwise_conv.weight"], saved["_blocks.6._depthwise_conv.weight"])
    student = build(TrainConfig(skin=str(tmp_path / "run" / "skin-lite0.pt")), 5)
    assert torch.equal(student.stage4[1].state_dict()["_depthwise_conv.weight"], saved["_blocks.6._depthwise_conv.weight"])
    assert torch.equal(student.stem[1].running_mean, saved["_bn0.running_mean"])


def test_dermnet_photos_join_as_other_with_a_group_per_condition(snapshot, tmp_path, image_folder):
    cache_dir, reserved = cache(snapshot, tmp_path)
    source = dermnet.OtherSource(cache_dir, reserved, per_condition=2, per_mimic=3)
    ds, groups = prepare(image_folder, source)
    assert ds.classes == ["Chickenpox", "Measles", "Monkeypox", "Normal", "Other"]
    added = [i for i, p in enumerate(ds.paths) if p.startswith("dermnet:")]
    # Orf is a reserved file's condition (a mimic): up to 3 of its training photos; the others up to 2
    cached = dermnet.load(cache_dir, reserved)
    train = [cached.conditions[i] for i in cached.where("train")]
    assert len(added) == sum(min(3 if c == "Orf" else 2, train.count(c)) for c in set(train))
    assert set(ds.labels[added]) == {4} and ds.images[added].shape[1:] == (224, 224, 3)
    msid = [i for i in range(len(ds)) if i not in added]
    assert np.bincount(ds.labels[msid]).tolist() == [6, 6, 6, 6]
    by_condition = {}
    for i in added:
        by_condition.setdefault(dermnet.condition_of(ds.paths[i]), set()).add(int(groups[i]))
    assert all(len(g) == 1 for g in by_condition.values()) and len(set.union(*by_condition.values())) == len(by_condition)
    assert not set(groups[added]) & set(groups[msid])


def test_folds_split_the_photos_as_before_and_dermnet_by_whole_conditions(snapshot, tmp_path, image_folder):
    cache_dir, reserved = cache(snapshot, tmp_path)
    plain, plain_groups = prepare(image_folder)
    ds, groups = prepare(image_folder, dermnet.OtherSource(cache_dir, reserved, per_condition=3, per_mimic=3))
    before = grouped_folds(plain.labels, plain_groups, 2, 0)
    after = dataset_folds(ds, groups, 2, 0)
    n = len(plain)
    for (tr0, te0), (tr1, te1) in zip(before, after):
        assert sorted(te1[te1 < n]) == sorted(te0) and sorted(tr1[tr1 < n]) == sorted(tr0)
    tested = [{dermnet.condition_of(ds.paths[i]) for i in te if i >= n} for _, te in after]
    assert not tested[0] & tested[1] and tested[0] | tested[1]


def test_an_export_says_under_which_terms_its_training_data_may_be_used():
    from training.export import training_data_terms

    msid_only = {"config": {"skin": ""}, "classes": ["Chickenpox", "Measles", "Monkeypox", "Normal"]}
    assert "CC BY 4.0" in training_data_terms(msid_only) and "non-commercial" not in training_data_terms(msid_only)
    with_other = {"config": {"skin": ""}, "classes": [*msid_only["classes"], "Other"]}
    skin = {"config": {"skin": "runs/skin/skin-lite0.pt"}, "classes": msid_only["classes"]}
    assert all("DermNet" in training_data_terms(c) and "non-commercial" in training_data_terms(c) for c in (with_other, skin))
