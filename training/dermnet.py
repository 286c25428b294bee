"""DermNet as a local cache of logo-free clinical photos: skin pretraining and "other condition".

Source: the public snapshot of github.com/MinhKemm/DermNet_Dataset at commit 2df7ed1, folder
`dermnet-output/images/<condition>/` (about 8,800 photos of 381 conditions, 640x480 JPEG),
read from a bare git directory (what the `fetch` tool brings) or from a checkout. Rules kept
here, because a model trained on this data is only as honest as the cache:

- The snapshot must match the pinned list (training/dermnet-2df7ed1.sha256): a missing or
  changed file is one error naming it, never a silently different dataset.
- Never the reserved files (../shared/data/dermnet-reserved.txt: independent checks, or the
  same pictures as MSID photos), nor their near-duplicates, nor near-duplicates of MSID photos
  (training.data's rule); every drop is recorded in the manifest with its reason. A cache
  holding a reserved picture is refused when built and when loaded.
- DermNet's white logo (lower left, x 55-175, y 325-440 of 640x480) and the "Te Whatu Ora"
  credit some photos carry (x 50-270, y 385-445) would teach a model the logo, not the skin:
  only the band above them (rows 0-317, LOGO_FREE_FRACTION of the height) is kept.
- Whole conditions are held out for evaluation (HOLDOUT_CONDITION_SHARE, chosen by a hash of
  the name, never a condition the independent checks use) and a share of the photos of every
  trained condition (HOLDOUT_IMAGE_SHARE): `split` in the manifest.
- Licence: DermNet's images are for non-commercial use with attribution (dermnetnz.org); the
  model card says which models saw them.

The cache lives outside the repository (default ~/.cache/mpox/dermnet): photos as JPEG at
CACHE_HEIGHT rows (the band's aspect kept) and manifest.json with the sha256 of each source
and cached file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.contract import OTHER_LABEL
from training.data import ImageSet, fingerprint, fingerprints, near_duplicates, stack_fingerprints
from training.errors import DataError

log = logging.getLogger(__name__)

SNAPSHOT = "MinhKemm/DermNet_Dataset@2df7ed1"
COMMIT = "2df7ed1"
IMAGES_DIR = "dermnet-output/images"
PINNED = Path(__file__).with_name("dermnet-2df7ed1.sha256")
DEFAULT_RESERVED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dermnet-reserved.txt"
DEFAULT_MSID = Path(__file__).resolve().parents[2] / "shared" / "data" / "msid"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mpox" / "dermnet"
CACHE_FORMAT = "mpox-dermnet-cache/1"

LOGO_FREE_FRACTION = 318 / 480  # rows above the logo and the credit, as a share of the height
CACHE_HEIGHT = 224
CROP_SIZE = 224  # the models' input
JPEG_QUALITY = 95
HOLDOUT_CONDITION_SHARE = 1 / 8
HOLDOUT_IMAGE_SHARE = 1 / 10
LICENCE = ("DermNet (dermnetnz.org) images via github.com/MinhKemm/DermNet_Dataset@2df7ed1: "
           "non-commercial use with attribution; logo region removed")


@dataclass(frozen=True)
class Reserved:
    """The files the project must never train on: sha256 -> path in the snapshot."""

    by_sha: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> Reserved:
        if not Path(path).is_file():
            raise DataError(f"reserved list not found: {path} (it keeps independent checks out of training)")
        return cls(dict(_sha_lines(Path(path))))

    def holds(self, sha: str, rel: str) -> bool:
        """Is this file (by content or by path) one never to train on?"""
        return sha in self.by_sha or rel in self.by_sha.values()

    @property
    def conditions(self) -> set[str]:
        return {condition_of(p) for p in self.by_sha.values()}


def _sha_lines(path: Path) -> list[tuple[str, str]]:
    """`sha256  path` lines (sha256sum's format), comments and blank lines skipped."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        sha, sep, rel = line.partition("  ")
        if not sep or len(sha) != 64:
            raise DataError(f"{path}:{n}: expected 'sha256  path', got {line[:80]!r}")
        out.append((sha, rel))
    return out


def condition_of(rel: str) -> str:
    """'dermnet-output/images/Orf/x.jpg' -> 'Orf'."""
    return rel.split("/")[-2]


class Snapshot:
    """The snapshot's images: a bare git directory (read at COMMIT) or a checkout folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"DermNet snapshot not found: {self.root}")
        self.git = (self.root / "HEAD").is_file() and (self.root / "objects").is_dir()
        if not self.git and not (self.root / IMAGES_DIR).is_dir():
            raise DataError(f"{self.root} is neither a git directory nor a checkout with {IMAGES_DIR}/")

    def paths(self) -> set[str]:
        if self.git:
            out = self._git("ls-tree", "-r", "-z", "--name-only", COMMIT, IMAGES_DIR)
            return {p.decode() for p in out.split(b"\0") if p}
        return {p.relative_to(self.root).as_posix() for p in (self.root / IMAGES_DIR).rglob("*") if p.is_file()}

    def read(self, rel: str) -> bytes:
        if self.git:
            return self._git("cat-file", "blob", f"{COMMIT}:{rel}")
        return (self.root / rel).read_bytes()

    def _git(self, *args: str) -> bytes:
        try:
            return subprocess.run(["git", f"--git-dir={self.root}", *args], capture_output=True, check=True).stdout
        except subprocess.CalledProcessError as e:
            raise DataError(f"cannot read the DermNet snapshot {self.root} at {COMMIT}: {e.stderr.decode().strip()}") from None


def verify(snapshot: Snapshot, pinned: Path = PINNED) -> dict[str, tuple[str, bytes]]:
    """Every pinned image, checked: path -> (sha256, bytes). A missing or changed file is a
    DataError naming it (and how many more there are)."""
    expected = dict((rel, sha) for sha, rel in _sha_lines(pinned))
    present = snapshot.paths()
    missing = sorted(set(expected) - present)
    if missing:
        raise DataError(f"DermNet snapshot {snapshot.root} lacks {missing[0]}" + _more(missing))
    files, changed = {}, []
    for rel in sorted(expected):
        raw = snapshot.read(rel)
        sha = hashlib.sha256(raw).hexdigest()
        if sha != expected[rel]:
            changed.append(rel)
        files[rel] = (sha, raw)
    if changed:
        raise DataError(f"DermNet snapshot {snapshot.root}: {changed[0]} differs from the pinned file" + _more(changed))
    return files


def _more(items: list[str]) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


def logo_free(bgr: np.ndarray) -> np.ndarray:
    """The band of the photo above DermNet's logo and credit."""
    return bgr[: int(bgr.shape[0] * LOGO_FREE_FRACTION)]


def split_of(rel: str, protected: set[str]) -> str:
    """'train', 'holdout-condition' (a whole condition kept out) or 'holdout-image'."""
    def share(text: str) -> float:
        return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16 ** 8

    condition = condition_of(rel)
    if condition not in protected and share("condition:" + condition) < HOLDOUT_CONDITION_SHARE:
        return "holdout-condition"
    return "holdout-image" if share("image:" + rel) < HOLDOUT_IMAGE_SHARE else "train"


def _decode(raw: bytes) -> np.ndarray | None:
    try:
        return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None


def _msid_images(msid: Path | None) -> list[tuple[str, np.ndarray]]:
    if msid is None:
        return []
    if not Path(msid).is_dir():
        raise DataError(f"MSID folder not found: {msid} (its near-duplicates must be kept out of DermNet)")
    out = []
    for f in sorted(Path(msid).rglob("*")):
        img = _decode(f.read_bytes()) if f.is_file() else None
        if img is not None:
            out.append((f"msid:{f.relative_to(msid).as_posix()}", img))
    return out


def build(snapshot_root: str | Path, cache: str | Path = DEFAULT_CACHE, reserved_path: Path = DEFAULT_RESERVED,
          msid: Path | None = DEFAULT_MSID, pinned: Path = PINNED) -> dict:
    """Verify the snapshot, drop reserved pictures and near-duplicates, cut the logo off, and
    write the cache (written to a temporary folder, renamed when complete). Returns the manifest."""
    cache = Path(cache)
    reserved = Reserved.read(reserved_path)
    files = verify(Snapshot(snapshot_root), pinned)
    protected = reserved.conditions
    kept, dropped, smalls, whole, band = [], [], [], [], []
    for rel, (sha, raw) in files.items():
        if reserved.holds(sha, rel):
            dropped.append({"path": rel, "reason": "reserved"})
            continue
        bgr = _decode(raw)
        if bgr is None:
            dropped.append({"path": rel, "reason": "unreadable"})
            continue
        kept.append({"path": rel, "condition": condition_of(rel), "sha256": sha, "size": list(bgr.shape[1::-1]),
                     "split": split_of(rel, protected)})
        top = logo_free(bgr)
        whole.append(fingerprint(bgr))
        band.append(fingerprint(top))
        h, w = top.shape[:2]
        smalls.append(cv2.resize(top, (round(w * CACHE_HEIGHT / h), CACHE_HEIGHT), interpolation=cv2.INTER_AREA))
    # near-duplicates of what must stay out: reserved files (read from the snapshot) and MSID photos
    outside = [(f"reserved:{rel}", _decode(files[rel][1])) for rel in reserved.by_sha.values() if rel in files]
    outside += _msid_images(msid)
    out_prints = fingerprints([b for _, b in outside])
    match = near_duplicates(stack_fingerprints(whole), out_prints) | near_duplicates(stack_fingerprints(band), out_prints)
    tmp = cache.with_name(cache.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images").mkdir(parents=True)
    entries = []
    for i, entry in enumerate(kept):
        hits = np.nonzero(match[i])[0]
        if len(hits):
            dropped.append({"path": entry["path"], "reason": "near-duplicate", "of": outside[hits[0]][0]})
            continue
        ok, jpg = cv2.imencode(".jpg", smalls[i], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        name = f"images/{len(entries):05d}.jpg"
        (tmp / name).write_bytes(jpg.tobytes())
        entries.append({**entry, "file": name, "file_sha256": hashlib.sha256(jpg.tobytes()).hexdigest()})
    manifest = {"format": CACHE_FORMAT, "source": SNAPSHOT, "licence": LICENCE, "logo_free_fraction": LOGO_FREE_FRACTION,
                "reserved_sha256": hashlib.sha256(Path(reserved_path).read_bytes()).hexdigest(),
                "images": entries, "dropped": sorted(dropped, key=lambda d: d["path"])}
    refuse_reserved(manifest, reserved)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if cache.exists():
        shutil.rmtree(cache)
    tmp.rename(cache)
    return manifest


def refuse_reserved(manifest: dict, reserved: Reserved) -> None:
    """A cache holding a reserved picture must never reach training."""
    slipped = [e["path"] for e in manifest["images"] if reserved.holds(e["sha256"], e["path"])]
    if slipped:
        raise DataError(f"reserved DermNet image in the training cache: {slipped[0]}" + _more(slipped))


def center_crops(bands: list[np.ndarray]) -> np.ndarray:
    """The middle square of each band at CROP_SIZE px: how a photo is evaluated."""
    out = np.empty((len(bands), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for k, band in enumerate(bands):
        h, w = band.shape[:2]
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        out[k] = cv2.resize(band[y:y + side, x:x + side], (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
    return out


@dataclass
class DermNetSet:
    """The cache in memory: logo-free bands (N, CACHE_HEIGHT, W, 3) uint8 RGB, W per image."""

    bands: list[np.ndarray]
    conditions: list[str]
    splits: list[str]
    paths: list[str]

    def where(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.splits) if s == split], np.int64)


def load(cache: str | Path = DEFAULT_CACHE, reserved_path: Path = DEFAULT_RESERVED) -> DermNetSet:
    """Read a cache made by build, checking each file's checksum and the reserved list."""
    cache = Path(cache)
    path = cache / "manifest.json"
    if not path.is_file():
        raise DataError(f"no DermNet cache at {cache}: build it with `mpox dermnet build --snapshot DIR`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != CACHE_FORMAT:
        raise DataError(f"{path}: not a DermNet cache of this version ({manifest.get('format')!r}); build it again")
    refuse_reserved(manifest, Reserved.read(reserved_path))
    bands, conditions, splits, paths = [], [], [], []
    for e in manifest["images"]:
        raw = (cache / e["file"]).read_bytes() if (cache / e["file"]).is_file() else b""
        if hashlib.sha256(raw).hexdigest() != e["file_sha256"]:
            raise DataError(f"DermNet cache {cache}: {e['file']} ({e['path']}) is missing or changed; build it again")
        bands.append(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].copy())
        conditions.append(e["condition"])
        splits.append(e["split"])
        paths.append(e["path"])
    return DermNetSet(bands, conditions, splits, paths)


def pin(snapshot_root: str | Path, out: Path = PINNED) -> int:
    """Write the pinned list (sha256 and path of every image) from a trusted snapshot."""
    snap = Snapshot(snapshot_root)
    rels = sorted(snap.paths())
    lines = [f"{hashlib.sha256(snap.read(rel)).hexdigest()}  {rel}" for rel in rels]
    out.write_text(f"# {SNAPSHOT}: sha256 and path of every image (training/dermnet.py verifies the snapshot)\n"
                   + "\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)




MEASLES_LABEL = "Measles"  # DermNet's own folder of it joins MSID's class


def training_photos(ds: DermNetSet, classes: list[str], seed: int, per_condition: int, per_mimic: int,
                    mimics: set[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """A sample of the cache's training photos as square 224 px images for MSID's classifier:
    each condition's photos (up to per_condition, or per_mimic for the conditions that look
    most like mpox) as OTHER_LABEL, DermNet's measles as MEASLES_LABEL. Returns (images RGB,
    label names, paths 'dermnet:<path>')."""
    rng = np.random.default_rng(seed)
    by_condition: dict[str, list[int]] = {}
    for i in ds.where("train"):
        by_condition.setdefault(ds.conditions[i], []).append(int(i))
    chosen, names = [], []
    for condition in sorted(by_condition):
        members = by_condition[condition]
        label = MEASLES_LABEL if condition == MEASLES_LABEL and MEASLES_LABEL in classes else OTHER_LABEL
        cap = len(members) if label == MEASLES_LABEL else per_mimic if condition in mimics else per_condition
        for i in sorted(rng.permutation(members)[:cap]):
            chosen.append(int(i))
            names.append(label)
    return center_crops([ds.bands[i] for i in chosen]), names, [f"dermnet:{ds.paths[i]}" for i in chosen]


@dataclass(frozen=True)
class OtherSource:
    """Which DermNet photos join MSID's training data (training.experiment.prepare)."""

    cache: Path = DEFAULT_CACHE
    reserved: Path = DEFAULT_RESERVED
    per_condition: int = 2
    per_mimic: int = 10  # the conditions the independent checks use: mpox's likeliest mimics
    seed: int = 0

    def add_to(self, ds: ImageSet, groups: np.ndarray) -> tuple[ImageSet, np.ndarray]:
        """ds with the sampled photos added (classes gain OTHER_LABEL), and their groups: one
        per condition."""
        dn = load(self.cache, self.reserved)
        mimics = Reserved.read(self.reserved).conditions - {MEASLES_LABEL}
        classes = sorted(set(ds.classes) | {OTHER_LABEL})
        images, names, paths = training_photos(dn, classes, self.seed, self.per_condition, self.per_mimic, mimics)
        old = np.array([classes.index(c) for c in ds.classes])[ds.labels]
        conditions = sorted({condition_of(p) for p in paths})
        condition_group = {c: int(groups.max()) + 1 + i for i, c in enumerate(conditions)}
        digest = hashlib.sha256((ds.data_hash + sha256_file(self.cache / "manifest.json") + repr(self)).encode()).hexdigest()
        merged = ImageSet(np.concatenate([ds.images, images]), np.concatenate([old, [classes.index(n) for n in names]]),
                          classes, ds.paths + paths, digest)
        log.info("added %d DermNet photos (%d as %s) of %d conditions", len(paths), names.count(OTHER_LABEL), OTHER_LABEL,
                 len(conditions))
        return merged, np.concatenate([groups, [condition_group[condition_of(p)] for p in paths]])


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
