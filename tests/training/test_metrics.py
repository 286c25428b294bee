import numpy as np
import torch

from edge.contract import decide
from training.experiment import shift_classifier_bias
from training.metrics import balanced_accuracy, choose_class_bias, shift_class

CLASSES = ["Chickenpox", "Measles", "Monkeypox", "Normal", "Other"]
OTHER = CLASSES.index("Other")


def probs_where_other_takes_the_named_rashes(rng: np.random.Generator, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Each named-class photo: its class second to an inflated "Other"; each Other photo: Other far ahead."""
    labels = np.repeat(np.arange(len(CLASSES)), n)
    logits = rng.normal(0, 0.3, (len(labels), len(CLASSES)))
    logits[np.arange(len(labels)), labels] += 3.0
    logits[labels != OTHER, OTHER] += 3.5  # the look of another photo source, not the skin
    logits[labels == OTHER, OTHER] += 4.0
    e = np.exp(logits)
    return labels, e / e.sum(1, keepdims=True)


def test_the_other_offset_gives_the_named_rashes_back_and_keeps_other_photos_other():
    labels, probs = probs_where_other_takes_the_named_rashes(np.random.default_rng(0))
    bias = choose_class_bias(labels, probs, CLASSES, OTHER)
    assert bias < 0
    before = balanced_accuracy(labels, probs.argmax(1), len(CLASSES))
    shifted = shift_class(probs, OTHER, bias)
    after = balanced_accuracy(labels, shifted.argmax(1), len(CLASSES))
    assert after > before + 0.3
    assert (decide(shifted[labels == OTHER], CLASSES, 0.5) == OTHER).mean() > 0.9


def test_a_model_that_is_right_already_keeps_its_other_class_as_trained():
    labels = np.repeat(np.arange(len(CLASSES)), 10)
    probs = np.full((len(labels), len(CLASSES)), 0.02)
    probs[np.arange(len(labels)), labels] = 0.92
    assert choose_class_bias(labels, probs, CLASSES, OTHER) == 0.0


def test_shift_class_is_what_the_shifted_classifier_gives():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, len(CLASSES))

        def classifier_layers(self):
            return (self.fc,)

        def forward(self, x):
            return self.fc(x)

    torch.manual_seed(0)
    model, x = Tiny(), torch.randn(6, 3)
    with torch.no_grad():
        before = torch.softmax(model(x), 1).numpy()
        shift_classifier_bias(model, OTHER, -1.5)
        after = torch.softmax(model(x), 1).numpy()
    assert np.allclose(shift_class(before, OTHER, -1.5), after, atol=1e-5)
