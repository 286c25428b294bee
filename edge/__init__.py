"""The kiosk runtime: camera -> preprocess -> infer -> decide -> record.

Imports nothing heavy at package level and never torch or nncf: a Pi kiosk installs only this.
"""

import os

__version__ = "0.1.0"

# OpenCV decodes any size an image header claims unless told otherwise: a few-KB PNG can ask
# for gigabytes. Set before cv2 is first imported anywhere in the kiosk (it reads this once);
# a decode beyond it fails and becomes an ImageError (edge.engine.read_image).
MAX_IMAGE_PIXELS = 50_000_000  # 8K photos pass; 40000x40000 headers do not
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))



def _decline_openvino_telemetry() -> None:
    """OpenVINO (and NNCF) send usage statistics to Google Analytics unless a consent file in
    $HOME says no, and write a client id under $HOME/intel on import. A kiosk makes no
    network contact its operator did not configure and writes nowhere but its state and log
    locations, and a service user's home may not exist: so the answer is no, here, before
    openvino is first imported, whatever a reinstall or a home folder holds."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # a future openvino without this package: nothing to decline
        return
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED


_decline_openvino_telemetry()
