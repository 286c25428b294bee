"""User errors of the training tools: the CLI prints their message and exits non-zero."""


class TrainingError(Exception):
    """A problem the user can fix (bad path, unknown model, corrupt checkpoint)."""


class DataError(TrainingError):
    """The data folder is missing, empty or unusable."""
