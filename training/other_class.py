"""The "Other" answer as a fifth row of a finished four-class model's classifier.

Taught as a fifth class from the start, "Other" cost the four named classes 5-6 pp of
accuracy on MSID's photos (docs/RESULTS.md, issue 21): DermNet's photos pulled the features
the named rashes are told apart by. Here the four-class model is trained first, exactly as
without DermNet, and then frozen; only a new row of its last linear layer is fitted, on the
features it already has, to tell DermNet's conditions from the named classes. The first four
rows are untouched, so among the named classes the model ranks as before, and the exported
graph (and its class activation maps) is the same kind of network with one more output.

The row is a logistic fit: with the named logits l fixed, softmax over (l, z) gives "Other"
the probability sigmoid(z - logsumexp(l)), so z = w . h + b is fitted by class-balanced
cross-entropy of that (L-BFGS, a little L2 on w) on the training views' features h.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.errors import TrainingError
from training.train import to_input

L2 = 1e-3  # on the row's weights, in units of the mean loss
FIT_STEPS = 200


def last_linear(model: nn.Module) -> tuple[tuple[nn.Module, ...], nn.Linear]:
    """The classifier's layers before its last linear layer, and that layer."""
    layers = model.classifier_layers()
    if not isinstance(layers[-1], nn.Linear):
        raise TrainingError(f"{type(model).__name__}'s classifier does not end in a linear layer")
    return layers[:-1], layers[-1]


@torch.no_grad()
def features(model: nn.Module, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """What the last linear layer reads, and the model's logits, for uint8 RGB images (eval mode)."""
    model.eval()
    before, fc = last_linear(model)
    hs = []
    for i in range(0, len(images), batch):
        h = model.pool(model.feature_map(to_input(images[i:i + batch])))
        for layer in before:
            h = layer(h)
        hs.append(h.float())
    h = torch.cat(hs)
    return h.numpy(), fc(h).numpy()


def fit_row(h: np.ndarray, logits: np.ndarray, is_other: np.ndarray) -> tuple[np.ndarray, float]:
    """(w, b) of the "Other" logit z = w . h + b, given the named logits fixed. Fitted on
    standardised features (so the L2 means the same for any network's feature scale), then
    folded back into w and b."""
    if is_other.all() or not is_other.any():
        raise TrainingError("the Other row needs photos of other conditions and of the named classes")
    mean, scale = h.mean(0), h.std(0) + 1e-12
    x = torch.from_numpy((h - mean) / scale).double()
    offset = torch.logsumexp(torch.from_numpy(logits).double(), 1)
    y = torch.from_numpy(is_other.astype(np.float64))
    weight = torch.where(y > 0, 0.5 / y.sum(), 0.5 / (1 - y).sum())  # the two sides count alike
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=FIT_STEPS, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = x @ w + b - offset
        loss = (weight * F.binary_cross_entropy_with_logits(z, y, reduction="none")).sum() + L2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    w_std, b_std = w.detach().numpy(), float(b.detach())
    return (w_std / scale).astype(np.float32), b_std - float((w_std * mean / scale).sum())


def grow(linear: nn.Linear, index: int, w: np.ndarray | None = None, b: float = 0.0) -> nn.Linear:
    """A copy of `linear` with one more output at `index` (weights w and bias b; zeros if None)."""
    out = nn.Linear(linear.in_features, linear.out_features + 1)
    with torch.no_grad():
        row = torch.zeros(1, linear.in_features) if w is None else torch.from_numpy(w)[None]
        out.weight.copy_(torch.cat([linear.weight[:index], row, linear.weight[index:]]))
        out.bias.copy_(torch.cat([linear.bias[:index], torch.tensor([b]), linear.bias[index:]]))
    return out


def add_other_class(model: nn.Module, index: int, images: np.ndarray, is_other: np.ndarray) -> dict:
    """Give a trained model the class at `index` ("Other"), fitted on `images` (uint8 RGB:
    the training views of the named classes and of other conditions). Fast-MpoxNet's
    auxiliary heads (used only in training) grow a zero row, so the checkpoint loads as a
    model of the new class count. Returns how the fit separates its training images."""
    h, logits = features(model, images)
    w, b = fit_row(h, logits, is_other)
    _, fc = last_linear(model)
    owners = [(module, name) for module in model.modules() for name, child in module.named_children() if child is fc]
    for module, name in owners:
        setattr(module, name, grow(fc, index, w, b))
    for aux in (getattr(model, "aux2", None), getattr(model, "aux3", None)):
        if aux is not None:
            aux.fc = grow(aux.fc, index)
    z = h @ w + b - np.logaddexp.reduce(logits, axis=1)
    return {"other_train_recall": float((z[is_other] > 0).mean()), "other_train_false": float((z[~is_other] > 0).mean())}
