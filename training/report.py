"""Tables of CV runs for docs/RESULTS.md: the ablation of the Fast-MpoxNet paper, the
EfficientNet version ablation, and the statistics, all on the same folds and seeds."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from training.metrics import summarise
from training.stats import fold_homogeneity, fold_predictions, paired_tests, pooled_threshold_check
from training.train import TrainConfig


@dataclass(frozen=True)
class Variant:
    name: str
    distill: bool
    augment: bool
    ablgfm: bool
    aux: bool


# The paper's ablation order: each row adds one thing to the row above.
ABLATION = (
    Variant("scratch", False, False, False, False),
    Variant("+ transfer (ImageNet body, distillation)", True, False, False, False),
    Variant("+ augmentation", True, True, False, False),
    Variant("+ ABLGFM", True, True, True, False),
    Variant("+ auxiliary losses (Fast-MpoxNet)", True, True, True, True),
)


# The EfficientNet paper's version ablation: the larger ImageNet weights that exist offline,
# fine-tuned with the teacher's recipe into RUNS/<name>; Lite0's row is the fold teachers'.
VERSIONS = ("efficientnet-lite1", "efficientnet-lite2")


def variant_dir(runs: Path, v: Variant) -> Path:
    """runs/fast-mpoxnet for the full model (the main CV run), else runs/ablation/<flags>."""
    if v == ABLATION[-1]:
        return runs / "fast-mpoxnet"
    flags = [k for k, on in (("distill", v.distill), ("aug", v.augment), ("ablgfm", v.ablgfm), ("aux", v.aux)) if on]
    return runs / "ablation" / ("-".join(flags) or "scratch")


def variant_config(base: TrainConfig, v: Variant) -> TrainConfig:
    """Transfer is both halves of it: the body's ImageNet weights and the teacher's logits."""
    return replace(base, ablgfm=v.ablgfm, aux_heads=v.aux, pretrained=v.distill)


FIGURES = (("accuracy", "accuracy (at threshold)"), ("argmax_accuracy", "accuracy (argmax)"), ("Monkeypox.recall", "mpox sensitivity"), ("Monkeypox.specificity", "mpox specificity"),
           ("Monkeypox.f1", "mpox F1"), ("roc_auc_macro", "macro ROC AUC"), ("pr_auc_macro", "macro PR AUC"))


def row(name: str, folds: list[dict]) -> str:
    s = summarise(folds)
    cells = [f"{100 * s[k]['mean']:.2f} +- {100 * s[k]['sd']:.2f}" if k in s else "-" for k, _ in FIGURES]
    return f"| {name} | {len(folds)} | " + " | ".join(cells) + " |"


def header() -> str:
    return "| model | folds | " + " | ".join(label for _, label in FIGURES) + " |\n|---|---|" + "---|" * len(FIGURES)


def fold_metrics(run: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted(run.glob("fold*/metrics.json"))]


def teacher_metrics(cache: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted(cache.glob("fold*/aug/test_metrics.json"))]


def ablation_table(runs: Path, cache: Path) -> str:
    lines = [header()]
    for v in ABLATION:
        folds = fold_metrics(variant_dir(runs, v))
        if folds:
            lines.append(row(v.name, folds))
    teacher = teacher_metrics(cache)
    if teacher:
        lines.append(row("EfficientNet-Lite0 (the teacher)", teacher))
    return "\n".join(lines)


def versions_table(runs: Path, cache: Path) -> str:
    lines = [header()]
    teacher = teacher_metrics(cache)
    if teacher:
        lines.append(row("efficientnet-lite0 (the teachers)", teacher))
    for name in VERSIONS:
        folds = fold_metrics(runs / name)
        if folds:
            lines.append(row(name, folds))
    return "\n".join(lines)


def statistics(runs: Path, cache: Path | None = None) -> dict:
    main = fold_predictions(runs / "fast-mpoxnet")
    out = {"fast-mpoxnet fold homogeneity": fold_homogeneity(main),
           "fast-mpoxnet thresholds": pooled_threshold_check(main)} if len(main) > 1 else {}
    teacher = fold_predictions(cache, "fold*/aug/test_predictions.npz", "test_metrics.json") if cache else []
    if len(teacher) > 1:
        out["efficientnet-lite0 fold homogeneity"] = fold_homogeneity(teacher)
        if len(teacher) == len(main):
            out["efficientnet-lite0 vs fast-mpoxnet"] = paired_tests(teacher, main)
        for name in VERSIONS:
            other = fold_predictions(runs / name)
            if len(other) == len(teacher):
                out[f"{name} vs efficientnet-lite0"] = paired_tests(other, teacher)
    for v in ABLATION[:-1]:
        other = fold_predictions(variant_dir(runs, v))
        if len(other) == len(main) > 1:
            out[f"fast-mpoxnet vs {v.name}"] = paired_tests(main, other)
    return out


def render(runs: Path, cache: Path) -> str:
    """Everything docs/RESULTS.md takes from the CV runs, from the folds finished so far."""
    return "\n\n".join(["## Ablation", ablation_table(runs, cache), "## EfficientNet versions", versions_table(runs, cache),
                        "## Statistics", json.dumps(statistics(runs, cache), indent=2)])
