"""The model bundle: how a health authority ships a model to its kiosks.

A bundle is a plain (uncompressed) tar of exactly four regular files at its top level:

    <model>.xml, <model>.bin   the OpenVINO IR, carrying its facts in rt_info (edge/contract.py)
    SHA256SUMS                 `sha256sum` lines for the .xml and the .bin
    SHA256SUMS.sig             the raw 64-byte ed25519 signature over SHA256SUMS

The authority signs with its private key (authority/signing.py: `mpox models keygen`,
`mpox models bundle`); a kiosk trusts only the public key in its config (`rollout.public_key`). Reading a bundle checks
the signature first, then every member against SHA256SUMS; anything else in the tar (folders,
links, `../`, a fifth file, a member too large) is refused, so a bundle can never write
outside the folder it is unpacked to.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.engine import sha256_file
from edge.errors import KioskError

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
sha256_of = sha256_file  # a bundle file's sha256: what `mpox models bundle` prints and an announcement carries
MAX_SUMS_BYTES = 4096  # two sha256sum lines; a larger SHA256SUMS is not ours


class BundleError(KioskError):
    """A bundle that cannot be trusted or used: unsigned, wrong key, altered, malformed, too large."""


@dataclass(frozen=True)
class Verified:
    """A bundle whose signature and checksums held, unpacked."""

    xml: Path
    sums_sha256: str  # of SHA256SUMS: names the bundle's content (the install folder's suffix)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the kiosk's key -------------------------------------------------------------------------

def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise BundleError(f"cannot read rollout.public_key {path}: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"rollout.public_key {path} is not an ed25519 public key")
    return key


# --- the kiosk's side -------------------------------------------------------------------------

def _members(tar: tarfile.TarFile, max_bytes: int) -> dict[str, tarfile.TarInfo]:
    """The bundle's four members by name, or a BundleError naming what is wrong."""
    found: dict[str, tarfile.TarInfo] = {}
    total = 0
    for m in tar:  # one header at a time: a tar of countless members is refused at the fifth
        if len(found) == 4:
            raise BundleError(f"bundle has more than four members ({m.name!r} is a fifth)")
        if not m.isreg() or not MEMBER_NAME.match(m.name):
            kind = "a link" if m.issym() or m.islnk() else "a folder" if m.isdir() else "not a plain file name" \
                if m.isreg() else "not a regular file"
            raise BundleError(f"bundle member {m.name!r} is refused: {kind}")
        if m.name in found:
            raise BundleError(f"bundle member {m.name!r} appears twice")
        total += m.size
        if total > max_bytes:
            raise BundleError(f"bundle content is larger than rollout.max_bundle_mb ({max_bytes / 1e6:g} MB)")
        found[m.name] = m
    if SIGNATURE not in found:
        raise BundleError(f"bundle is not signed (no {SIGNATURE})")
    xmls = [n for n in found if n.endswith(".xml")]
    expected = {SUMS, SIGNATURE, *xmls, *(n[:-4] + ".bin" for n in xmls)}
    if len(xmls) != 1 or set(found) != expected:
        raise BundleError(f"bundle must hold one .xml, its .bin, {SUMS} and {SIGNATURE}; it holds {', '.join(sorted(found))}")
    return found


def _read(tar: tarfile.TarFile, m: tarfile.TarInfo, limit: int) -> bytes:
    if m.size > limit:
        raise BundleError(f"bundle member {m.name} is too large ({m.size} bytes)")
    f = tar.extractfile(m)
    assert f is not None  # a regular file (checked)
    return f.read()


def _listed(sums: bytes) -> dict[str, str]:
    try:
        listed = {}
        for line in sums.decode("ascii").splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                    raise ValueError(f"not a sha256: {digest[:20]}")
                listed[name.strip().lstrip("*")] = digest.lower()
        return listed
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"bundle {SUMS} is malformed: {e}") from None


def unpack_verified(bundle: Path, public_key: Ed25519PublicKey, key_source: str, folder: Path, max_bytes: int) -> Verified:
    """Check the bundle's signature, then unpack its model into `folder` (which must exist),
    each file hashed as it is written and compared with the signed SHA256SUMS."""
    size = bundle.stat().st_size
    if size > max_bytes:
        raise BundleError(f"bundle is {size / 1e6:.1f} MB, more than rollout.max_bundle_mb ({max_bytes / 1e6:g} MB)")
    try:
        tar = tarfile.open(bundle, "r:")  # plain tar only: no decompression to bomb us
    except (tarfile.TarError, OSError) as e:
        raise BundleError(f"{bundle.name} is not a model bundle (a plain tar): {e}") from None
    with tar:
        try:
            members = _members(tar, max_bytes)
            sums = _read(tar, members[SUMS], MAX_SUMS_BYTES)
            signature = _read(tar, members[SIGNATURE], 1024)
            try:
                public_key.verify(signature, sums)
            except InvalidSignature:
                raise BundleError(f"bundle signature does not verify with {key_source}: signed with another key, "
                                  f"or {SUMS} was altered") from None
            listed = _listed(sums)
            model = sorted(n for n in members if n not in (SUMS, SIGNATURE))
            if sorted(listed) != model:
                raise BundleError(f"bundle {SUMS} lists {', '.join(sorted(listed))}, not {', '.join(model)}")
            for name in model:
                digest = hashlib.sha256()
                src = tar.extractfile(members[name])
                assert src is not None
                with open(folder / name, "xb") as dst:
                    for block in iter(lambda src=src: src.read(1 << 20), b""):
                        digest.update(block)
                        dst.write(block)
                    dst.flush()
                    os.fsync(dst.fileno())
                if digest.hexdigest() != listed[name]:
                    raise BundleError(f"bundle member {name} does not match its signed checksum: altered or damaged")
        except tarfile.TarError as e:
            raise BundleError(f"{bundle.name} is a damaged tar: {e}") from None
    (folder / SUMS).write_bytes(sums)
    (folder / SIGNATURE).write_bytes(signature)
    xml = next(folder / n for n in model if n.endswith(".xml"))
    return Verified(xml, sha256_bytes(sums))
