"""Model bundles: a directory with manifest.json and each part's own files.

Nothing in a bundle is pickled or executed: the encoder is a Keras file loaded in safe mode,
the statistics are .npz arrays read without pickle, and every file's SHA-256 is checked
against the manifest before use. Saving writes a sibling directory and renames it into place.
"""

import hashlib
import json
import os
import shutil
import time
from importlib.resources import files
from pathlib import Path

from . import __version__
from .errors import BundleError
from .plugins import get_part

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATEFUL_PARTS = ("encoder", "tag_model", "visualizer")


def bundled_root() -> Path:
    return Path(str(files("lablr.core") / "bundles"))


def bundled_names() -> list[str]:
    root = bundled_root()
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).exists()) if root.is_dir() else []


def resolve(model) -> Path:
    """A bundle directory from a path or the name of a bundle that ships with Lablr."""
    path = Path(model).expanduser()
    if (path / MANIFEST).exists():
        return path
    if "/" not in str(model) and (bundled_root() / str(model) / MANIFEST).exists():
        return bundled_root() / str(model)
    names = ", ".join(bundled_names()) or "none"
    raise BundleError(f"No model bundle at {model!r} (no {MANIFEST} there). Bundled models: {names}.", status=400)


def save(parts: dict, manifest: dict, directory) -> Path:
    """Write a bundle: the stateful parts' files, then the manifest with their checksums."""
    directory = Path(directory)
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for kind in STATEFUL_PARTS:
            parts[kind].save(partial)
        manifest = {**manifest, "format": FORMAT_VERSION, "lablr_version": __version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "files": {p.name: _sha256(p) for p in sorted(partial.iterdir())}}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        _swap_into_place(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def _swap_into_place(partial: Path, directory: Path):
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    partial.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(directory) -> dict:
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BundleError(f"Cannot read {directory / MANIFEST}: {error}") from None
    found = manifest.get("format")
    if found != FORMAT_VERSION:
        advice = ("upgrade Lablr (pip install -U lablr)" if isinstance(found, int) and found > FORMAT_VERSION
                  else "rebuild it with this Lablr (lablr train, or scripts/build_bundle.py)")
        raise BundleError(f"The model at {directory} has bundle format {found!r}; this Lablr reads format "
                          f"{FORMAT_VERSION}. To use it, {advice}.")
    return manifest


def check_parts(directory) -> dict:
    """The manifest, once every part it names can be built from its settings (cheap: no files read).

    A plugin that is not installed, or one whose optional extra is missing, fails here with its
    own message, before a server starts workers that would each fail with a traceback.
    """
    manifest = read_manifest(directory)
    _build_parts(manifest)
    return manifest


def load_parts(directory) -> tuple[dict, dict]:
    """(parts by kind, manifest) of a bundle, every file checked against its checksum first."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name, expected in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file() or _sha256(path) != expected:
            raise BundleError(f"{path} is missing or does not match its checksum: the bundle is damaged.")
    parts = _build_parts(manifest)
    for kind in STATEFUL_PARTS:
        parts[kind].load(directory)
    return parts, manifest


def calibrations(manifest) -> dict:
    """{scorer name: Calibration} recorded in a manifest; none (raw scores shown) in a bundle made before them."""
    from .calibration import Calibration

    found = manifest.get("calibration") or {}
    try:
        return {name: Calibration.from_dict(spec) for name, spec in found.items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BundleError("The manifest's calibration is damaged: rebuild the bundle, or remove its "
                          "\"calibration\" entry to show raw scores.") from None


def with_calibrations(manifest: dict, fitted: dict) -> dict:
    """The manifest with these calibrations ({scorer name: Calibration}) recorded."""
    return {**manifest, "calibration": {name: calibration.as_dict() for name, calibration in fitted.items()}}


def _build_parts(manifest) -> dict:
    return {kind: get_part(kind, spec["plugin"])(**spec.get("settings", {}))
            for kind, spec in manifest["parts"].items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
