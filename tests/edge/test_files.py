"""Files someone names are read only when regular and of a sane size (edge/files.py): a FIFO
named as the rollout key must not hang the kiosk's start, a device must not be read for ever."""

import os

import pytest

from edge.bundle import BundleError, load_public_key
from edge.files import Refused, read_regular


def test_only_a_regular_file_of_at_most_its_size_is_read(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"12345")
    assert read_regular(small, 5, "a test file") == b"12345"
    with pytest.raises(Refused, match="5 bytes, more than a test file ever holds"):
        read_regular(small, 4, "a test file")
    with pytest.raises(Refused, match="^a folder, not a test file: refused$"):
        read_regular(tmp_path, 100, "a test file")
    with pytest.raises(Refused, match="^a character device, not a test file"):
        read_regular("/dev/zero", 100, "a test file")
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", 100, "a test file")


@pytest.mark.timeout(30)
def test_a_fifo_as_the_rollout_key_is_refused_at_once(tmp_path):
    fifo = tmp_path / "rollout.pub"
    os.mkfifo(fifo)  # nobody writes to it: a plain read would wait for ever
    with pytest.raises(BundleError, match=r"cannot read rollout.public_key .*rollout.pub: a FIFO, not a public key file"):
        load_public_key(fifo)
    big = tmp_path / "big.pub"
    big.write_bytes(b"-" * 100_000)
    with pytest.raises(BundleError, match="more than a public key file ever holds"):
        load_public_key(big)
