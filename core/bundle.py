"""Model bundles: a directory with manifest.json and each part's own files.

This module is the one place that reads and writes the manifest's fields (docs/bundle-format.md
describes each). Elsewhere a manifest is a `Manifest`; its JSON form stays here.

Nothing in a bundle is pickled or executed: the encoder is a LiteRT .tflite (and a Keras file loaded in safe mode),
the statistics are .npz arrays read without pickle, and every file's SHA-256 is checked
against the manifest before use. Saving writes a sibling directory and renames it into place.

A bundle of an older format is read through `UPGRADES`: each entry turns a manifest of one
format into the next, so a bundle written by any earlier Lablr still loads.
"""

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from lablr.core import __version__, defaults, fitted_photos
from lablr.core.errors import BundleError
from lablr.core.files import atomic_directory, ready_to_replace, sha256_file, write_atomically
from lablr.core.part_settings import check_part_kinds, check_settings
from lablr.core.plugins import check_pairing, get_part

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
BUNDLE_IN_WORDS = "a model bundle"
STATEFUL_PARTS = ("encoder", "tag_model", "visualizer")
# Beside the parts: which photos the tag statistics hold (lablr.core.fitted_photos), absent when not known
FITTED_PHOTOS = "fitted_photos"


@dataclass
class PartSpec:
    """A part as a bundle records it: the registered name, and the settings that rebuild it."""

    name: str
    settings: dict = field(default_factory=dict)


@dataclass
class TrainingData:
    """Which photos a model was fitted on, and which were held out to measure it."""

    source: str | None  # the catalog's source of the photos; None: every source
    rules: dict  # lablr.core.data.selection.Rules, as a dict
    train_photos: int
    test_photos: int
    test_keys: list[str]  # the held-out photos' catalog keys, sorted


@dataclass
class Manifest:
    parts: dict[str, PartSpec]  # by kind: encoder, tag_model, scorer, visualizer
    name: str | None = None
    data: TrainingData | None = None
    evaluation: dict | None = None  # figures by scorer, on the held-out photos (lablr.core.pipeline.metrics)
    # By scorer: the function from raw score to shown probability (lablr.core.pipeline.calibrate); none in a
    # bundle made before calibration, whose raw scores are shown as they are.
    calibration: dict = field(default_factory=dict)
    # How the encoder was trained ({"epochs", "seed"}): with parts and data, the recipe that rebuilds the bundle
    # (lablr.core.pipeline.recipe); none in a bundle made before recipes were recorded.
    training: dict | None = None
    # Recorded by save() for people and tools to read; a loaded model takes them from its parts.
    tags: list[tuple[str, int]] = field(default_factory=list)  # (tag, photos), in the tag model's order
    image_size: int | None = None
    lablr_version: str | None = None
    created: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256

    def part_names(self) -> dict[str, str]:
        return {kind: spec.name for kind, spec in self.parts.items()}


# -- reading ----------------------------------------------------------------------------------------


def _upgrade_1_to_2(manifest: dict) -> dict:
    """Format 1 called each part's registered name "plugin"; format 2 calls it "name"."""
    parts = {kind: {"name": spec["plugin"], **{k: v for k, v in spec.items() if k != "plugin"}}
             for kind, spec in manifest["parts"].items()}
    return {**manifest, "parts": parts, "format": 2}


UPGRADES = {1: _upgrade_1_to_2}  # format -> a function from that format's manifest to the next one's


def read_manifest(directory) -> Manifest:
    directory = Path(directory)
    raw = _manifest_json(directory)
    try:
        return _from_json(upgrade(raw, directory))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BundleError(f"The manifest {directory / MANIFEST} is damaged ({type(error).__name__}: {error}).") \
            from None


def _manifest_json(directory: Path):
    """The manifest's JSON, as it is (any format)."""
    path = directory / MANIFEST
    if path.is_symlink() or not path.is_file():  # a FIFO would hang the read
        raise BundleError(f"{path} is not a regular file: the bundle is damaged.")
    try:
        with open(path, "rb") as file:
            text = file.read(defaults.MAX_MANIFEST_BYTES + 1)  # never more: a manifest of gigabytes is refused
        if len(text) > defaults.MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is larger than {defaults.MAX_MANIFEST_BYTES:,} bytes, more than any "
                              "manifest Lablr writes: the bundle is damaged or crafted.")
        return json.loads(text)
    except (OSError, ValueError) as error:
        raise BundleError(f"Cannot read {directory / MANIFEST}: {error}") from None


def upgrade(manifest: dict, directory) -> dict:
    """A manifest of any format this Lablr can read, in the current format."""
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found == FORMAT_VERSION:
        return manifest
    if isinstance(found, int) and found in UPGRADES:
        return upgrade(UPGRADES[found](manifest), directory)
    advice = ("upgrade Lablr (pip install -U lablr)" if isinstance(found, int) and found > FORMAT_VERSION
              else "rebuild it with this Lablr (lablr train, or scripts/build_bundle.py)")
    raise BundleError(f"The model at {directory} has bundle format {found!r}; this Lablr reads formats "
                      f"{min(UPGRADES, default=FORMAT_VERSION)} to {FORMAT_VERSION}. To use it, {advice}.")


def _from_json(raw: dict) -> Manifest:
    data = raw.get("data")
    return Manifest(
        parts={kind: PartSpec(spec["name"], dict(spec.get("settings", {}))) for kind, spec in raw["parts"].items()},
        name=raw.get("name"),
        data=TrainingData(data.get("source"), data.get("rules") or {}, data.get("train_photos", 0),
                          data.get("test_photos", 0), list(data.get("test_keys", []))) if data else None,
        evaluation=raw.get("evaluation"),
        calibration=_calibrations(raw.get("calibration")),
        training=_training(raw.get("training")),
        tags=[(row["tag"], row["count"]) for row in raw.get("tags", [])],
        image_size=raw.get("image_size"),
        lablr_version=raw.get("lablr_version"),
        created=raw.get("created"),
        files=dict(raw.get("files", {})),
    )


def _calibrations(raw) -> dict:
    from lablr.core.pipeline.calibrate import Calibration

    try:
        return {name: Calibration.from_dict(spec) for name, spec in (raw or {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BundleError("The manifest's calibration is damaged: rebuild the bundle, or remove its "
                          "\"calibration\" entry to show raw scores.") from None


def _training(raw) -> dict | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(type(raw.get(k)) is int for k in ("epochs", "seed")):
        raise BundleError("The manifest's training record is damaged: it needs whole numbers \"epochs\" and "
                          "\"seed\".")
    return {"epochs": raw["epochs"], "seed": raw["seed"]}


# -- writing ----------------------------------------------------------------------------------------


def _to_json(manifest: Manifest, parts: dict, files: dict) -> dict:
    specs = {kind: {"name": spec.name, "settings": parts[kind].settings() if kind in parts else spec.settings}
             for kind, spec in manifest.parts.items()}
    tag_model = parts["tag_model"]
    out = {
        "format": FORMAT_VERSION,
        "name": manifest.name,
        "lablr_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parts": specs,
        "image_size": parts["encoder"].image_size,
        "tags": [{"tag": tag, "count": int(count)} for tag, count in zip(tag_model.tags, tag_model.counts)],
    }
    if manifest.data is not None:
        data = manifest.data
        out["data"] = {"source": data.source, "rules": data.rules, "train_photos": data.train_photos,
                       "test_photos": data.test_photos, "test_keys": sorted(data.test_keys)}
    if manifest.evaluation is not None:
        out["evaluation"] = manifest.evaluation
    if manifest.training is not None:
        out["training"] = manifest.training
    if manifest.calibration:
        out["calibration"] = {name: calibration.as_dict() for name, calibration in manifest.calibration.items()}
    out["files"] = files
    return out


def is_bundle(directory) -> bool:
    """Whether the folder holds a bundle's manifest (a folder that `save` may replace): one that any Lablr wrote,
    of a format this one cannot read or damaged since (Lablr then says to rebuild it, at the same place)."""
    try:
        raw = _manifest_json(Path(directory))
    except BundleError:
        return False
    return isinstance(raw, dict) and isinstance(raw.get("format"), int) and "lablr_version" in raw


def check_out(directory):
    """Before any long work: `directory` can take a bundle (absent, empty, or a bundle), or a one-line error."""
    ready_to_replace(directory, BUNDLE_IN_WORDS, is_bundle)


def save(parts: dict, manifest: Manifest, directory) -> Path:
    """Write a bundle: the stateful parts' files and the record of the photos its tag statistics hold
    (parts[FITTED_PHOTOS], if known), then the manifest with their checksums."""
    directory = Path(directory)
    with atomic_directory(directory, BUNDLE_IN_WORDS, is_bundle) as partial:
        for kind in STATEFUL_PARTS:
            parts[kind].save(partial)
        if parts.get(FITTED_PHOTOS) is not None:
            parts[FITTED_PHOTOS].save(partial)
        checksums = {p.name: sha256_file(p) for p in sorted(partial.iterdir())}
        text = json.dumps(_to_json(manifest, parts, checksums), indent=2, ensure_ascii=False) + "\n"
        (partial / MANIFEST).write_text(text)
    return directory


def leave_out(directory, name: str):
    """Take one file out of a saved bundle, and out of its manifest: a shipped bundle that runs a file
    another shipped bundle carries (scripts/build_bundle.py)."""
    directory = Path(directory)
    raw = json.loads((directory / MANIFEST).read_text())
    raw["files"].pop(name)
    write_atomically(directory / MANIFEST, json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    (directory / name).unlink()


# -- finding and loading ----------------------------------------------------------------------------


def bundled_root() -> Path:
    return Path(str(files("lablr.core") / "bundles"))


def bundled_names() -> list[str]:
    root = bundled_root()
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).exists()) if root.is_dir() else []


def checksum(directory) -> str:
    """A bundle's identity: the SHA-256 of its manifest, which holds the SHA-256 of every other file."""
    return sha256_file(Path(directory) / MANIFEST)


def resolve(model) -> Path:
    """A bundle directory from a path or the name of a bundle that ships with Lablr."""
    path = Path(model).expanduser()
    if (path / MANIFEST).exists():
        return path
    if "/" not in str(model) and (bundled_root() / str(model) / MANIFEST).exists():
        return bundled_root() / str(model)
    names = ", ".join(bundled_names()) or "none"
    raise BundleError(f"No model bundle at {model!r} (no {MANIFEST} there). Bundled models: {names}.", status=400)


def check_parts(directory) -> Manifest:
    """The manifest, once every part it names can be built from its settings (cheap: no files read).

    A plugin that is not installed, one whose optional extra is missing, or a scorer that needs
    what the tag model lacks fails here with its own one-line message, before a server starts
    workers that would each fail with a traceback.
    """
    manifest = read_manifest(directory)
    build_parts(manifest)
    return manifest


def load_parts(directory) -> tuple[dict, Manifest]:
    """(parts by kind, and the FITTED_PHOTOS record if the bundle has one; manifest) of a bundle, checked
    before it serves: every file listed, regular and matching its checksum; each part's own checks as it
    loads (shapes from the headers before the data, finite values, covariances positive definite), and the
    record's; then the parts together on one photo."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    check_files(directory, manifest)
    parts = build_parts(manifest)
    for kind in STATEFUL_PARTS:
        parts[kind].load(directory)
    if fitted_photos.FILE in manifest.files:
        parts[FITTED_PHOTOS] = fitted_photos.FittedPhotos.read(directory)
    check_together(parts, directory)
    return parts, manifest


def check(directory) -> Manifest:
    """Load the bundle as a server worker would, and let it go: `lablr serve` fails here, in one line,
    before any worker starts."""
    return load_parts(directory)[1]


def check_files(directory: Path, manifest: Manifest):
    """Every file in the bundle is listed in the manifest, a regular file (no link, no FIFO that would
    hang the load), and matches its checksum; every file listed is there."""
    try:
        present = {entry.name: entry for entry in os.scandir(directory) if entry.name != MANIFEST}
    except OSError as error:
        raise BundleError(f"Cannot read the bundle {directory}: {error.strerror}.") from None
    for name in sorted(set(present) | set(manifest.files)):
        path = directory / name
        if name not in manifest.files:
            raise BundleError(f"{path} is not listed in the bundle's manifest: the bundle is damaged.")
        entry = present.get(name)
        if entry is None or not entry.is_file(follow_symlinks=False):
            raise BundleError(f"{path} is missing or not a regular file: the bundle is damaged.")
        if sha256_file(path) != manifest.files[name]:
            raise BundleError(f"{path} does not match its checksum: the bundle is damaged.")


def check_together(parts: dict, directory):
    """One blank photo through encoder and scorer: sizes that disagree, or numbers that are not
    finite, are found now, not as a 500 on every request."""
    encoder, tag_model = parts["encoder"], parts["tag_model"]
    blank = np.full((1, encoder.image_size, encoder.image_size, 3), 255, np.uint8)
    latent = np.asarray(encoder.encode(blank))
    dim = np.shape(tag_model.centroids())[-1]
    if latent.shape != (1, dim):
        raise BundleError(f"The model at {directory} is damaged: its encoder gives {latent.shape[-1]} numbers per "
                          f"photo, its tag statistics are in {dim} dimensions.")
    if not np.isfinite(latent).all():
        raise BundleError(f"The model at {directory} is damaged: its encoder gives numbers that are not finite.")
    if tag_model.tags and not np.isfinite(parts["scorer"].score(latent, tag_model).score).all():
        raise BundleError(f"The model at {directory} is damaged: it scores a photo with numbers that are not finite.")


def build_parts(manifest: Manifest) -> dict:
    """Each part the manifest names, built from its settings (nothing learned is loaded yet).

    Every part's settings are checked (names, types, ranges) before any part is built from them.
    """
    check_part_kinds({kind: spec.name for kind, spec in manifest.parts.items()})
    names = manifest.part_names()
    check_pairing(names["scorer"], names["tag_model"])
    chosen = {kind: get_part(kind, spec.name) for kind, spec in manifest.parts.items()}
    for kind, spec in manifest.parts.items():
        check_settings(kind, spec.name, chosen[kind].factory, spec.settings)
    return {kind: chosen[kind](**manifest.parts[kind].settings) for kind in chosen}


# -- latent spaces ----------------------------------------------------------------------------------


def latent_space(manifest: Manifest) -> str:
    """A fingerprint of the latent space a bundle's encoder maps photos into: the encoder, the settings that
    shape its latents' form, and the files that decide them (its LATENT_FILES, e.g. effnet-lite0's PCA; every
    file of the bundle for an encoder that names none). Bundles with the same one give a photo the same latent,
    so statistics and personal layers made under one hold under the other."""
    encoder = manifest.parts["encoder"]
    named = getattr(get_part("encoder", encoder.name).factory, "LATENT_FILES", ())
    identity = {"encoder": encoder.name,
                "shape": {key: encoder.settings.get(key) for key in ("latent_dim", "image_size")},
                "files": {name: manifest.files.get(name) for name in (named or sorted(manifest.files))}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
