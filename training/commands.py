"""Training's commands, as `mpox --help` lists them: imported (with torch) only when one runs."""

from edge.commands import Registered

COMMANDS = [
    Registered("train", "training.cli:train", "Train a model (a final one, or --cv K folds) on an ImageFolder.", "train"),
    Registered("evaluate", "training.cli:evaluate", "Screening metrics of a checkpoint on an ImageFolder, and how it calls DermNet's held-out conditions (JSON).", "train"),
    Registered("export", "training.cli:export", "Export a checkpoint to OpenVINO IR (and ONNX) with its metadata.", "train"),
    Registered("ablation", "training.cli:ablation",
               "The paper's ablation on the same folds and seeds (resumable), then its table.", "train"),
    Registered("report", "training.cli:report_cmd",
               "The ablation and version tables and the statistics of the CV runs finished so far.", "train"),
    Registered("distill", "training.cli:distill",
               "Train Fast-MpoxNet by function matching from an exported teacher IR (final model).", "train"),
    Registered("dermnet", "training.cli:dermnet", "DermNet's photos as a local cache for skin pretraining and the 'Other' class.",
               "train"),
    Registered("skin-pretrain", "training.cli:skin_pretrain",
               "Skin pretraining: EfficientNet-Lite0 learns DermNet's conditions (resumable).", "train"),
    Registered("rethreshold", "training.cli:rethreshold",
               "Choose the models' mpox threshold on kiosk views of their validation part.", "train"),
]
