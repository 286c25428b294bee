"""The model bundle: how a health authority ships a model to its kiosks.

A bundle is a plain (uncompressed) tar of regular files at its top level:

    <model>.xml, <model>.bin   the OpenVINO IR, carrying its facts in rt_info (edge/contract.py)
    PROBE.json, probe-NN.png   the probe set: labelled pictures and the least the model must get
                               right on them (edge/probeset.py)
    SHA256SUMS                 `sha256sum` lines for every file above
    SHA256SUMS.sig             the raw 64-byte ed25519 signature over SHA256SUMS

The authority signs with its private key (authority/signing.py: `mpox models keygen`,
`mpox models bundle`); a kiosk trusts only the public key in its config (`rollout.public_key`). Reading a bundle checks
the signature first, then every member against SHA256SUMS, so a probe picture can no more be
swapped than the weights; anything else in the tar (folders, links, `../`, another file, a
member too large) is refused, so a bundle can never write outside the folder it is unpacked to.
Bundles made before the probe set have no PROBE.json: they still read (edge/rollout.py decides
what to do with them).
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

from edge import probeset
from edge.engine import sha256_file
from edge.errors import KioskError
from edge.files import read_regular
from edge.probeset import ProbeSet

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
sha256_of = sha256_file  # a bundle file's sha256: what `mpox models bundle` prints and an announcement carries
MAX_KEY_BYTES = 4096  # an ed25519 public key in PEM is 113 bytes
MAX_SUMS_BYTES = 16384  # a line for the model's two files, the manifest and each probe picture; a larger one is not ours
MAX_MEMBERS = 5 + probeset.MAX_PICTURES


class BundleError(KioskError):
    """A bundle that cannot be trusted or used: unsigned, wrong key, altered, malformed, too large."""


@dataclass(frozen=True)
class Verified:
    """A bundle whose signature and checksums held, unpacked."""

    xml: Path
    sums_sha256: str  # of SHA256SUMS: names the bundle's content (the install folder's suffix)
    probe: ProbeSet | None  # its pictures beside the model; None: a bundle made before probe sets


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the kiosk's key -------------------------------------------------------------------------

def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(read_regular(path, MAX_KEY_BYTES, "a public key file"))
    except (OSError, ValueError) as e:
        raise BundleError(f"cannot read rollout.public_key {path}: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"rollout.public_key {path} is not an ed25519 public key")
    return key


# --- the kiosk's side -------------------------------------------------------------------------

def _kind(name: str) -> str | None:
    """What a member of this name is in a bundle, or None: not part of one."""
    if name in (SUMS, SIGNATURE, probeset.MANIFEST):
        return name
    if probeset.PICTURE_NAME.match(name):
        return "picture"
    return name[-4:] if name.endswith((".xml", ".bin")) else None


def _members(tar: tarfile.TarFile, max_bytes: int) -> dict[str, tarfile.TarInfo]:
    """The bundle's members by name, or a BundleError naming what is wrong."""
    found: dict[str, tarfile.TarInfo] = {}
    total = 0
    for m in tar:  # one header at a time: a tar of countless members is refused at the first too many
        if len(found) == MAX_MEMBERS:
            raise BundleError(f"bundle has more than {MAX_MEMBERS} members ({m.name!r} is one more)")
        if not m.isreg() or not MEMBER_NAME.match(m.name):
            kind = "a link" if m.issym() or m.islnk() else "a folder" if m.isdir() else "not a plain file name" \
                if m.isreg() else "not a regular file"
            raise BundleError(f"bundle member {m.name!r} is refused: {kind}")
        if _kind(m.name) is None:
            raise BundleError(f"bundle member {m.name!r} is refused: not part of a model bundle")
        if m.name in found:
            raise BundleError(f"bundle member {m.name!r} appears twice")
        limit = {"picture": probeset.MAX_PICTURE_BYTES, probeset.MANIFEST: probeset.MAX_MANIFEST_BYTES}.get(_kind(m.name))
        if limit is not None and m.size > limit:
            raise BundleError(f"bundle member {m.name} is too large ({m.size} bytes, at most {limit})")
        total += m.size
        if total > max_bytes:
            raise BundleError(f"bundle content is larger than rollout.max_bundle_mb ({max_bytes / 1e6:g} MB)")
        found[m.name] = m
    if SIGNATURE not in found:
        raise BundleError(f"bundle is not signed (no {SIGNATURE})")
    xmls = [n for n in found if n.endswith(".xml")]
    pictures = {n for n in found if _kind(n) == "picture"}
    expected = {SUMS, SIGNATURE, *xmls, *(n[:-4] + ".bin" for n in xmls)}
    if probeset.MANIFEST in found:
        expected |= {probeset.MANIFEST, *pictures}
    if len(xmls) != 1 or set(found) != expected:
        raise BundleError(f"bundle must hold one .xml, its .bin, {SUMS} and {SIGNATURE} (and {probeset.MANIFEST} with its "
                          f"probe pictures); it holds {', '.join(sorted(found))}")
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
    """Check the bundle's signature, then unpack its model and probe set into `folder` (which
    must exist), each file hashed as it is written and compared with the signed SHA256SUMS."""
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
            files = sorted(n for n in members if n not in (SUMS, SIGNATURE))
            if sorted(listed) != files:
                raise BundleError(f"bundle {SUMS} lists {', '.join(sorted(listed))}, not {', '.join(files)}")
            for name in files:
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
    xml = next(folder / n for n in files if n.endswith(".xml"))
    return Verified(xml, sha256_bytes(sums), _probe_set(folder, members))


def _probe_set(folder: Path, members: dict[str, tarfile.TarInfo]) -> ProbeSet | None:
    """The unpacked (and checksum-verified) probe manifest, naming exactly the pictures the bundle holds."""
    if probeset.MANIFEST not in members:
        return None
    try:
        probe = ProbeSet.from_json((folder / probeset.MANIFEST).read_bytes())
    except ValueError as e:
        raise BundleError(f"bundle {probeset.MANIFEST} is malformed: {e}") from None
    named = {p.file for p in probe.pictures}
    held = {n for n in members if _kind(n) == "picture"}
    if named != held:
        raise BundleError(f"bundle {probeset.MANIFEST} names {', '.join(sorted(named))}; the bundle holds "
                          f"{', '.join(sorted(held)) or 'no probe picture'}")
    return probe
