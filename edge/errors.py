"""One exception hierarchy for the kiosk, with messages a technician can act on."""


class KioskError(Exception):
    """Base of every error the kiosk reports to a person rather than as a traceback."""


class ConfigError(KioskError):
    """The configuration file is missing, malformed or has a wrong key or value."""


class ModelError(KioskError):
    """The model file is missing, corrupt, or lacks the metadata the kiosk needs."""


class CameraError(KioskError):
    """The camera cannot be opened or stopped delivering frames."""


class SourceEnded(CameraError):
    """A played-back source (a video file, a folder) reached its end and does not loop."""


class ImageError(KioskError):
    """An image file cannot be read."""


class StoreError(KioskError):
    """The audit store cannot be opened or used: a path that is not a folder, no permission,
    a damaged or newer database, another kiosk on the same state folder, no space."""
