"""Sharded fitting: a bundle's tag statistics fitted in N parts, apart, and merged exactly.

`lablr fit --shard I/N` encodes only the training photos whose key hashes to shard I (of 0 to
N-1) with the bundle's own encoder, never retrained, so every part lies in the same latent
space; it writes a *part*: the tag model's sums (count, sum, sum of outer products per tag),
fitted with the bundle's tag model settings, the shard's latents with each photo's tags, and
a `part.json` saying what they were fitted with. `lablr merge` adds the parts' sums into a
normal bundle and calibrates its scores on all the parts' latents, as one `lablr fit` over
all the photos does (the pipeline's stages, lablr.core.pipeline.stages): the same bundle up to
float rounding, for every tag model setting.

Every shard chooses the photos and tags from the whole catalog under the same rules (cheap:
no image is read), so the parts agree on the vocabulary and on which photos count. Parts
that disagree (another encoder, other rules, another catalog) are refused.
"""

import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from lablr.core.bundle import PartSpec, TrainingData, check_out, latent_space
from lablr.core.data.image_cache import prepared_images
from lablr.core.data.selection import Rules, unit_hash
from lablr.core.errors import LablrError
from lablr.core.files import atomic_directory, ready_to_replace, sha256_file
from lablr.core.model import Model
from lablr.core.pipeline import stages
from lablr.core.pipeline.recipe import Recipe
from lablr.core.plugins import get_part

PART_FILE = "part.json"
PART_IN_WORDS = "a part of `lablr fit --shard`"
LATENTS_FILE = "latents.npz"  # the shard's photos: keys, latents, and which of the tags each carries
PART_KIND = "lablr-part"
PART_FORMAT = 3  # 2: parts carry their latents, for the merged bundle's calibration; 3: bundle.latent_space


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), with 0 <= I < N."""
    try:
        index, count = (int(n) for n in str(text).split("/"))
    except ValueError:
        raise LablrError(f"--shard takes I/N, e.g. 0/4 for the first of four shards; not {text!r}.") from None
    if not 0 <= index < count:
        raise LablrError(f"--shard {text}: I counts from 0 to N-1.")
    return index, count


def shard_of(key: str, count: int) -> int:
    """The shard a photo belongs to: a hash of its key, the same on every machine."""
    return int(unit_hash("shard:" + key) * count)


def fit_shard(model_name, catalog_path, out, shard: tuple[int, int], *, rules: Rules | None = None,
              source=None) -> dict:
    """Encode this shard's training photos with the bundle's encoder and write their tag sums as a part."""
    index, count = shard
    check_part_out(out)
    started = time.perf_counter()
    model = Model.load(model_name)
    loaded = time.perf_counter()
    recipe = replace(Recipe.of_manifest(model.manifest, with_data=False), source=source, rules=rules)
    recipe, selection = stages.select_photos(catalog_path, recipe)
    stages.require_training_photos(selection, catalog_path, recipe.rules)
    if not hasattr(stages.new_tag_model(recipe), "merge"):
        raise LablrError(f"The tag model {model.part_names['tag_model']!r} cannot merge shards.")
    mine = [p for p in selection.train if shard_of(p["key"], count) == index]
    encoded = (stages.encode(model.encoder, prepared_images(catalog_path, mine, model.image_size), mine) if mine
               else stages.nothing_encoded(model.encoder.latent_dim))
    encoded_at = time.perf_counter()
    tag_model = stages.fit_tags(recipe, encoded, selection.tags)
    seconds = {"load": loaded - started, "select_and_encode": encoded_at - loaded,
               "statistics": time.perf_counter() - encoded_at}
    record = {
        "kind": PART_KIND, "format": PART_FORMAT, "shard": [index, count], "photos": len(encoded.keys),
        "model": model_reference(model.path), "latent_space": latent_space(model.manifest),
        "tag_model": {"name": recipe.parts["tag_model"].name, "settings": tag_model.settings()},
        "selection": _selection_digest(selection), "data": asdict(stages.data_summary(recipe, selection)),
        "fitted_by": {"host": socket.gethostname(), "pid": os.getpid()},
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
    }
    _write_part(tag_model, encoded, record, Path(out))
    return record


def merge(part_dirs, out, *, model_name=None) -> Model:
    """One bundle from the parts: their statistics added, its scores calibrated on their latents."""
    if not part_dirs:
        raise LablrError("Nothing to merge: give the part directories that `lablr fit --shard` wrote.")
    check_out(out)
    parts = [(Path(d), read_part(d)) for d in part_dirs]
    _check_compatible(parts)
    first_dir, first = parts[0]
    base = Model.load(model_name or first["model"])
    if latent_space(base.manifest) != first["latent_space"]:
        raise LablrError(f"Cannot merge into {base.name}: its encoder is not the one the parts were fitted with "
                         f"({first['model']}).")
    recipe = Recipe.of_manifest(base.manifest, with_data=False)
    recipe = replace(recipe, parts={**recipe.parts, "tag_model": PartSpec(first["tag_model"]["name"],
                                                                          dict(first["tag_model"]["settings"]))})
    merged, pieces = None, []
    for directory, record in parts:
        statistics = _tag_model(record["tag_model"], directory)
        statistics.load(directory)
        merged = statistics if merged is None else merged.merge(statistics)
        pieces.append(_read_latents(directory, merged.tags))
    encoded = stages.Encoded.joined(pieces)
    calibrations = stages.calibrate(recipe, encoded, merged.tags)
    model = stages.assemble(recipe, base.encoder, merged, calibrations, name=Path(out).name,
                            data=_training_data(first["data"], first_dir), photos=encoded.keys)
    model.save(out)
    return model


def _training_data(data: dict, directory: Path) -> TrainingData:
    try:
        return TrainingData(**data)
    except TypeError as error:
        raise LablrError(f"{directory / PART_FILE} is damaged: {error}") from None


def _tag_model(spec: dict, directory: Path):
    try:
        return get_part("tag_model", spec["name"])(**spec["settings"])
    except (TypeError, ValueError) as error:
        raise LablrError(f"The tag model settings in {directory / PART_FILE} are not valid: {error}") from None


def read_part(directory) -> dict:
    directory = Path(directory)
    try:
        record = json.loads((directory / PART_FILE).read_text())
    except (OSError, ValueError) as error:
        raise LablrError(f"{directory} is not a part written by `lablr fit --shard`: {error}") from None
    if not isinstance(record, dict) or record.get("kind") != PART_KIND:
        raise LablrError(f"{directory} is not a part written by `lablr fit --shard`.")
    if record.get("format") != PART_FORMAT:
        raise LablrError(f"The part {directory} has format {record.get('format')!r}; this Lablr merges format "
                         f"{PART_FORMAT}: fit it again with this Lablr.")
    if not _well_formed(record):
        raise LablrError(f"{directory / PART_FILE} is damaged: fit this shard again.")
    for name, expected in record["files"].items():
        if not (directory / name).is_file() or sha256_file(directory / name) != expected:
            raise LablrError(f"{directory / name} is missing or does not match its checksum: the part is damaged.")
    return record


def _well_formed(record: dict) -> bool:
    shard, files, tag_model = record.get("shard"), record.get("files"), record.get("tag_model")
    return (isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard)
            and 0 <= shard[0] < shard[1]
            and isinstance(files, dict) and PART_FILE not in files and LATENTS_FILE in files
            and all(isinstance(v, str) and isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..")
                    for n, v in files.items())
            and isinstance(tag_model, dict) and isinstance(tag_model.get("name"), str)
            and isinstance(tag_model.get("settings"), dict)
            and all(isinstance(record.get(k), str) for k in ("model", "latent_space", "selection"))
            and isinstance(record.get("data"), dict) and type(record.get("photos")) is int)


def model_reference(bundle_path) -> str:
    """How another machine finds the same bundle: a bundled model's name, or the path."""
    from lablr.core.bundle import bundled_root

    path = Path(bundle_path).resolve()
    return path.name if path.parent == bundled_root().resolve() else str(path)


def _selection_digest(selection) -> str:
    chosen = {"tags": selection.tags, "train": sorted(p["key"] for p in selection.train)}
    return hashlib.sha256(json.dumps(chosen).encode()).hexdigest()


_MUST_AGREE = (("latent_space", "encoder"), ("tag_model", "tag model or its settings"),
               ("data", "data source or selection rules"), ("selection", "photos or tags (another catalog?)"))


def _check_compatible(parts):
    first_dir, first = parts[0]
    count = first["shard"][1]
    for directory, record in parts[1:]:
        for field, what in _MUST_AGREE:
            if record[field] != first[field]:
                raise LablrError(f"Cannot merge {directory} with {first_dir}: "
                                 f"they were fitted with a different {what}.")
        if record["shard"][1] != count:
            raise LablrError(f"Cannot merge {directory} (shard {record['shard'][0]}/{record['shard'][1]}) with "
                             f"{first_dir} (of {count} shards): split the catalog the same way for every part.")
    indices = [m["shard"][0] for _, m in parts]
    twice = sorted({i for i in indices if indices.count(i) > 1})
    missing = sorted(set(range(count)) - set(indices))
    if twice:
        raise LablrError(f"Cannot merge: shard {twice[0]}/{count} is given more than once.")
    if missing:
        raise LablrError(f"Cannot merge: shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{i}/{count}' for i in missing)} missing.")


def _write_part(tag_model, encoded: "stages.Encoded", record: dict, directory: Path):
    """Written beside its place and renamed into it: a part is whole or absent."""
    with atomic_directory(directory, PART_IN_WORDS, is_part) as partial:
        tag_model.save(partial)
        _save_latents(partial / LATENTS_FILE, encoded, tag_model.tags)
        record = {**record, "files": {p.name: sha256_file(p) for p in sorted(partial.iterdir())}}
        (partial / PART_FILE).write_text(json.dumps(record, indent=2) + "\n")


def is_part(directory) -> bool:
    return (Path(directory) / PART_FILE).is_file()


def check_part_out(directory):
    """Before encoding: `directory` can take a part (absent, empty, or a part), or a one-line error."""
    ready_to_replace(directory, PART_IN_WORDS, is_part)


def _save_latents(path: Path, encoded: "stages.Encoded", tags):
    column = {tag: k for k, tag in enumerate(tags)}
    tagged = np.zeros((len(encoded.keys), len(tags)), dtype=bool)
    for row, own in enumerate(encoded.tags):
        tagged[row, [column[t] for t in own if t in column]] = True
    np.savez(path, keys=np.array(encoded.keys, dtype=str), latents=encoded.latents, tagged=tagged)


def _read_latents(directory: Path, tags) -> "stages.Encoded":
    try:
        with np.load(directory / LATENTS_FILE, allow_pickle=False) as data:
            keys, latents, tagged = list(data["keys"]), data["latents"], data["tagged"]
    except (OSError, ValueError, KeyError) as error:
        raise LablrError(f"{directory / LATENTS_FILE} is damaged: {error}") from None
    if tagged.shape != (len(keys), len(tags)) or len(latents) != len(keys):
        raise LablrError(f"{directory / LATENTS_FILE} does not match the part's tags: fit this shard again.")
    return stages.Encoded([str(k) for k in keys], latents, [[tags[k] for k in np.flatnonzero(row)]
                                                             for row in tagged])
