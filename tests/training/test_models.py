import pytest
import torch

from training.models import build_model
from training.models.efficientnet import imagenet_weights_path
from training.models.fast_mpoxnet import BODIES, FastMpoxNet


@pytest.mark.parametrize("body", BODIES)
def test_fast_mpoxnet_has_the_papers_size(body):
    model = FastMpoxNet(4, body=body)
    assert 250_000 <= model.deploy_parameters() <= 290_000  # 0.27M +- 0.02M, auxiliary heads excluded


@pytest.mark.parametrize("body", BODIES)
def test_auxiliary_heads_only_in_training(body):
    model = FastMpoxNet(4, body=body)
    x = torch.rand(2, 3, 224, 224)
    model.train()
    logits, aux2, aux3 = model(x)
    assert logits.shape == aux2.shape == aux3.shape == (2, 4)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)


def test_pretrained_body_is_efficientnet_lite0s_first_blocks_with_stem_and_stage2_frozen():
    model = FastMpoxNet(4)
    weights = torch.load(imagenet_weights_path("efficientnet-lite0"), map_location="cpu")
    assert torch.equal(model.stem[0].weight, weights["_conv_stem.weight"])
    assert torch.equal(model.stage4[2]._project_conv.weight, weights["_blocks.7._project_conv.weight"])
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("stem.", "stage2."))}
    stage3 = model.stage3[0]._project_conv.weight.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(2):
        logits, aux_a, aux_b = model(torch.rand(4, 3, 64, 64))
        opt.zero_grad()
        (logits.sum() + aux_a.sum() + aux_b.sum()).backward()
        opt.step()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())  # BatchNorm statistics included
    assert not torch.equal(stage3, model.stage3[0]._project_conv.weight)


def test_a_body_from_random_weights_tracks_its_batchnorm_statistics():
    """The scratch ablation row: TF-style momentum 0.01 would leave the running averages far
    behind the batch statistics after the ~360 steps of a no-augmentation run."""
    scratch = FastMpoxNet(4, pretrained=False)
    scratch.train()
    x = torch.rand(4, 3, 64, 64) * 3 + 2
    with torch.no_grad():
        batch_mean = scratch.stem[0](x).mean((0, 2, 3))
        for _ in range(30):
            scratch(x)
    assert torch.allclose(scratch.stem[1].running_mean, batch_mean, rtol=0.1, atol=1e-3)
    assert FastMpoxNet(4).stage3[0]._bn0.momentum == pytest.approx(0.01)  # fine-tuning keeps ImageNet's statistics' pace


def test_unknown_body_is_refused():
    with pytest.raises(ValueError, match="shufflenet"):
        FastMpoxNet(4, body="resnet")


def test_ablation_switches_change_the_network():
    full = FastMpoxNet(4)
    plain = FastMpoxNet(4, ablgfm=False, aux_heads=False)
    assert plain.ablgfm is None and plain.aux2 is None
    assert plain.deploy_parameters() < full.deploy_parameters()
    plain.train()
    assert plain(torch.rand(2, 3, 64, 64)).shape == (2, 4)


def test_efficientnet_loads_imagenet_weights_offline():
    model = build_model("efficientnet-lite0", 4)
    assert 3_400_000 < model.deploy_parameters() < 3_600_000
    weights = torch.load(imagenet_weights_path("efficientnet-lite0"), map_location="cpu")
    loaded = model.backbone.state_dict()
    assert len(weights) > 200 and all(torch.equal(weights[k], loaded[k]) for k in weights)
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 4)


def test_pre_distillation_learns_to_reproduce_the_teachers_predictions():
    import numpy as np

    from training.train import TrainConfig, pre_distill

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    views = rng.integers(0, 256, (2, 16, 32, 32, 3), dtype=np.uint8)
    targets = np.repeat(rng.normal(0, 3, (1, 16, 1000)), 2, axis=0).astype(np.float16)  # the same for both views
    model = FastMpoxNet(4, body="shufflenet")  # pre-distillation is the ShuffleNet body's transfer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(batch_size=8, lr=1e-2, weight_decay=0.0, pre_distill_epochs=20)
    losses = pre_distill(model, cfg, views, targets, show_progress=False)
    assert len(losses) == 20 and min(losses[-3:]) < 0.75 * losses[0]  # measured 0.47-0.61 over seeds and thread counts
    assert not torch.equal(before["stem.0.0.weight"], model.state_dict()["stem.0.0.weight"])
    assert set(model.state_dict()) == set(before)  # the temporary classifier is not part of the model
