"""The health authority's side of a model bundle (edge/bundle.py holds the format and the
kiosk's checks): an ed25519 key pair, a probe set measured on the model (edge/probeset.py),
and a signed bundle of an IR with it. Never on a kiosk: the private key stays with the people
who approve models."""

from __future__ import annotations

import io
import math
import os
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import openvino as ov
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import probeset
from edge.bundle import MEMBER_NAME, SIGNATURE, SUMS, BundleError, sha256_bytes, sha256_of
from edge.engine import Engine
from edge.errors import ImageError
from edge.images import IMAGE_SUFFIXES, decode_image, read_image
from edge.probeset import ProbePicture, ProbeSet, agreement

# The probe set's defaults (the CLI takes them from here).
PROBE_PER_CLASS = 4  # pictures of each label at most: a handful is enough to tell a model from garbage
PROBE_MARGIN = 0.15  # share of the pictures a kiosk may answer otherwise than measured here (its device, its precision)
PROBE_SIDE = 448  # a probe picture's longer side at most, in pixels: small, yet more than a model's input
ATTRIBUTION = "ATTRIBUTION.md"  # a probe folder's note on where its pictures come from, carried in the manifest


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


# --- the probe set ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    """A probe set measured on a model: its manifest and its pictures' PNG bytes by member name."""

    manifest: ProbeSet
    pictures: dict[str, bytes]

    def line(self) -> str:
        m = self.manifest
        return f"{m.measured_right} of {len(m.pictures)} right; a kiosk refuses it below {m.required_right}"


@dataclass(frozen=True)
class Labelled:
    """Pictures with their labels, and the note on where they come from (carried in the manifest)."""

    pictures: list[tuple[Path, str]]
    attribution: str = ""


def _attribution(folder: Path) -> str:
    note = Path(folder) / ATTRIBUTION
    return note.read_text(errors="replace")[:4000] if note.is_file() else ""


def image_folder(folder: Path) -> Labelled:
    """An ImageFolder layout: <folder>/<label>/<picture>, one subfolder a label (and an
    ATTRIBUTION.md at its top, if any)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"probe folder not found: {folder}")
    found = [(f, sub.name) for sub in sorted(p for p in folder.iterdir() if p.is_dir())
             for f in sorted(sub.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise BundleError(f"no pictures in {folder}: expected one folder per label (e.g. {folder}/Monkeypox/*.jpg)")
    return Labelled(found, _attribution(folder))


def demo_pictures() -> Labelled:
    """The kiosk's bundled demo pictures (edge/demo/, with their ATTRIBUTION.md), labelled by
    their file names as in the source (monkeypox5.png: Monkeypox)."""
    from edge.sources.demo import DEMO_DIR

    return Labelled([(f, m.group(0)) for f in sorted(DEMO_DIR.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES
                     and (m := re.match(r"[A-Za-z]+", f.name))], _attribution(DEMO_DIR))


def _as_png(path: Path) -> bytes:
    """The picture as the bundle carries it: PNG (lossless: edge/probeset.py says why), at most PROBE_SIDE."""
    image = read_image(path)
    h, w = image.shape[:2]
    if max(h, w) > PROBE_SIDE:
        scale = PROBE_SIDE / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ImageError(f"{path}: cannot be encoded as PNG")
    return data.tobytes()


def _labelled(pictures: list[tuple[Path, str]], labels: tuple[str, ...], per_class: int) -> list[tuple[Path, str]]:
    """The pictures with the model's spelling of their labels, at most per_class of each."""
    by_name = {label.lower(): label for label in labels}
    unknown = sorted({given for _, given in pictures if given.lower() not in by_name})
    if unknown:
        raise BundleError(f"probe pictures labelled {', '.join(unknown)}: not among the model's labels ({', '.join(labels)})")
    kept, seen = [], Counter()
    for path, given in pictures:
        label = by_name[given.lower()]
        if seen[label] < per_class:
            seen[label] += 1
            kept.append((path, label))
    return kept


def measure_probe_set(engine: Engine, pictures: Labelled, margin: float = PROBE_MARGIN,
                      per_class: int = PROBE_PER_CLASS) -> Measured:
    """The probe set of a bundle: the pictures as the bundle carries them, run
    through the model exactly as a kiosk will run them, and the least a kiosk must get right
    (what the model got here less `margin` of the pictures). Refused (BundleError) when that
    least is no more than a model answering one label to everything would get: such a probe
    set could not tell this model from garbage (or the model already is garbage)."""
    info = engine.info
    chosen = _labelled(pictures.pictures, info.labels, per_class)
    if len(chosen) > probeset.MAX_PICTURES:
        raise BundleError(f"{len(chosen)} probe pictures: at most {probeset.MAX_PICTURES}")
    encoded = {probeset.picture_name(i): _as_png(path) for i, (path, _) in enumerate(chosen, 1)}
    got = agreement(engine, ((decode_image(data, name), label) for (name, data), (_, label) in zip(encoded.items(), chosen)))
    allowance = math.ceil(margin * got.total)
    required = got.right - allowance
    label, most = Counter(label for _, label in chosen).most_common(1)[0]
    if required <= most:
        raise BundleError(f"{info.name} {info.version} answers {got.right} of {got.total} probe pictures right"
                          f"{f' (wrong: {got.wrong()})' if got.mistakes else ''}; a kiosk allowed {allowance} fewer could not "
                          f"tell it from a model answering {label} to everything ({most} right): not bundled. Check the model "
                          "(its labels in order?) or give more pictures of the other labels")
    manifest = ProbeSet(tuple(ProbePicture(name, label) for name, (_, label) in zip(encoded, chosen)), got.right, required,
                        f"OpenVINO {ov.get_version()}, {engine.device}, {engine.precision}", pictures.attribution)
    return Measured(manifest, encoded)


# --- the bundle --------------------------------------------------------------------------------

def write_bundle(xml: Path, key: Ed25519PrivateKey, out: Path, probe: Measured | None) -> str:
    """The signed bundle of an IR and its probe set at `out` (written whole, then renamed);
    returns its sha256, which the fleet announcement carries. `probe` None makes a bundle as
    they were before probe sets (kiosks refuse it unless told otherwise: edge/rollout.py)."""
    xml, bin_ = Path(xml), Path(xml).with_suffix(".bin")
    for f in (xml, bin_):
        if not f.is_file():
            raise BundleError(f"model file not found: {f}")
        if not MEMBER_NAME.match(f.name):
            raise BundleError(f"{f.name}: use a plain file name (letters, digits, . _ -)")
    files = [(xml.name, xml.read_bytes()), (bin_.name, bin_.read_bytes())]
    if probe is not None:
        files += [(probeset.MANIFEST, probe.manifest.to_json()), *sorted(probe.pictures.items())]
    sums = "".join(f"{sha256_bytes(data)}  {name}\n" for name, data in files).encode()
    members = [*files, (SUMS, sums), (SIGNATURE, key.sign(sums))]
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
