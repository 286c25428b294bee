import torch

from training.models import build_model
from training.models.efficientnet import imagenet_weights_path
from training.models.fast_mpoxnet import FastMpoxNet


def test_fast_mpoxnet_has_the_papers_size():
    model = FastMpoxNet(4)
    assert 250_000 <= model.deploy_parameters() <= 290_000  # 0.27M +- 0.02M, auxiliary heads excluded


def test_auxiliary_heads_only_in_training():
    model = FastMpoxNet(4)
    x = torch.rand(2, 3, 224, 224)
    model.train()
    logits, aux2, aux3 = model(x)
    assert logits.shape == aux2.shape == aux3.shape == (2, 4)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)


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
