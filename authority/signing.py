"""The health authority's side of a model bundle (edge/bundle.py holds the format and the
kiosk's checks): an ed25519 key pair, and a signed bundle of an IR. Never on a kiosk: the
private key stays with the people who approve models."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bundle import MEMBER_NAME, SIGNATURE, SUMS, BundleError, sha256_of


def generate_keys(private: Path, public: Path) -> None:
    """A new ed25519 key pair as PEM files; the private one readable by its owner only."""
    for p in (private, public):
        if p.exists():
            raise BundleError(f"{p} exists: refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise BundleError(f"cannot read the signing key {path}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an ed25519 private key (make one with `mpox models keygen`)")
    return key



def write_bundle(xml: Path, key: Ed25519PrivateKey, out: Path) -> str:
    """The signed bundle of an IR at `out` (written whole, then renamed); returns its sha256,
    which the fleet announcement carries."""
    xml, bin_ = Path(xml), Path(xml).with_suffix(".bin")
    for f in (xml, bin_):
        if not f.is_file():
            raise BundleError(f"model file not found: {f}")
        if not MEMBER_NAME.match(f.name):
            raise BundleError(f"{f.name}: use a plain file name (letters, digits, . _ -)")
    sums = "".join(f"{sha256_of(f)}  {f.name}\n" for f in (xml, bin_)).encode()
    members = [(xml.name, xml.read_bytes()), (bin_.name, bin_.read_bytes()), (SUMS, sums), (SIGNATURE, key.sign(sums))]
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0  # the same bytes for the same model and key
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_of(out)
