"""Reading a file someone names (a photo to classify, the rollout key in the config): only a
regular file, and never more than such a file ever holds. A FIFO nobody writes to would block
the reader for ever, a device never end, a huge file fill memory; every such read goes through
read_regular and fails the same way, in one line that says what the file is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
              stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


class Refused(OSError):
    """Not a regular file, or bigger than one of its kind: refused before it was read."""


def _not_regular(mode: int, what: str) -> Refused:
    kind = next((name for test, name in FILE_KINDS.items() if test(mode)), "not a regular file")
    return Refused(f"{kind}, not {what}: refused")


def read_regular(path: str | Path, max_bytes: int, what: str) -> bytes:
    """The bytes of a regular file of at most max_bytes; Refused (an OSError) otherwise, naming
    what it is instead of `what` ("an image file"). Checked before it is opened, and opened
    without blocking in case it changed since."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(mode, what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(st.st_mode, what)
        # Not read at all when too big; and one byte more than allowed is asked for, so that a
        # file grown since fstat is refused, not cut short.
        data = f.read(max_bytes + 1) if st.st_size <= max_bytes else b""
        if max(st.st_size, len(data)) > max_bytes:
            raise Refused(f"{max(st.st_size, len(data)):,} bytes, more than {what} ever holds ({max_bytes:,}): refused")
        return data
