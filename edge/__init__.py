"""The kiosk runtime: camera -> preprocess -> infer -> decide -> record.

Imports nothing heavy at package level and never torch or nncf: a Pi kiosk installs only this.
"""

__version__ = "0.1.0"
