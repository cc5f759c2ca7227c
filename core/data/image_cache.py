"""Prepared images: decoded once, stored as .npy shards, streamed in batches.

An image set is a directory of `shard-NNNNN.npy` files (uint8, (n, size, size, 3)) and an
`index.json` naming the photo of every row. Reading memory-maps one shard at a time, so
training memory does not grow with the number of images. The sets of a catalog are cached
beside it, in CATALOG.images/ (`prepared_images`): `lablr prepare`, `train`, `fit` and
`evaluate` decode each photo once.
"""

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lablr.core.data import decoding as imaging
from lablr.core.errors import ImageError, LablrError
from lablr.core.files import atomic_directory
from lablr.core.progress import progress_bar

SHARD_SIZE = 1024
INDEX = "index.json"


def _decode_one(job):
    key, path, size = job
    try:
        return key, imaging.load(path, size), None
    except ImageError as error:
        return key, None, error.message
    except Exception as error:  # a decoder bug on one odd file must not end a long job
        return key, None, f"{type(error).__name__}: {error}"


def prepare(photos, directory, size, *, workers=None, progress=True) -> "ImageSet":
    """Decode photos ({key, path}) into an image set; broken images are skipped and listed.

    The set is written beside its final place and renamed into it, so it is whole or absent.
    """
    directory = Path(directory)
    with atomic_directory(directory, "a set of prepared images", lambda d: (d / INDEX).is_file()) as partial:
        keys, shards, broken = _decode_into(partial, photos, size, workers=workers, progress=progress)
        (partial / INDEX).write_text(json.dumps({"image_size": size, "keys": keys, "shards": shards,
                                                 "broken": broken}))
    return ImageSet(directory)


def _decode_into(partial: Path, photos, size, *, workers, progress) -> tuple[list, list, dict]:
    """Decode the photos into .npy shards of SHARD_SIZE rows: (keys in row order, shards, {broken key: why})."""
    keys, shards, broken, buffer = [], [], {}, []

    def flush():
        if buffer:
            name = f"shard-{len(shards):05d}.npy"
            np.save(partial / name, np.stack(buffer))
            shards.append({"file": name, "count": len(buffer)})
            buffer.clear()

    jobs = [(p["key"], p["path"], size) for p in photos]
    workers = workers or min(4, os.cpu_count() or 1)
    daemon = multiprocessing.current_process().daemon  # e.g. a Dask worker: it may not start processes
    with (ThreadPoolExecutor if daemon else ProcessPoolExecutor)(workers) as pool:
        results = pool.map(_decode_one, jobs, chunksize=32)
        for key, array, error in progress_bar(results, total=len(jobs), desc="Decoding images", unit="img",
                                              shown=progress):
            if array is None:
                broken[key] = error
                continue
            keys.append(key)
            buffer.append(array)
            if len(buffer) == SHARD_SIZE:
                flush()
    flush()
    return keys, shards, broken


class ImageSet:
    def __init__(self, directory, keys=None):
        self.directory = Path(directory)
        index = json.loads((self.directory / INDEX).read_text())
        self.image_size = index["image_size"]
        self.broken = index.get("broken", {})
        self._shards = index["shards"]
        self._all_keys = index["keys"]
        wanted = None if keys is None else set(keys)
        starts = np.cumsum([0] + [s["count"] for s in self._shards])
        self._keys_by_shard = [self._all_keys[starts[i]:starts[i + 1]] for i in range(len(self._shards))]
        self._rows = [[row for row, key in enumerate(shard_keys) if wanted is None or key in wanted]
                      for shard_keys in self._keys_by_shard]
        self.keys = [self._keys_by_shard[i][row] for i, rows in enumerate(self._rows) for row in rows]
        self.count = len(self.keys)

    def subset(self, keys) -> "ImageSet":
        return ImageSet(self.directory, keys)

    def batches(self, batch_size, *, seed=None):
        """Yield uint8 batches; with a seed, shards and rows come in a shuffled order."""
        for _, batch in self.keyed_batches(batch_size, seed=seed):
            yield batch

    def keyed_batches(self, batch_size, *, seed=None):
        rng = np.random.default_rng(seed) if seed is not None else None
        order = list(range(len(self._shards)))
        if rng is not None:
            rng.shuffle(order)
        for shard in order:
            rows = np.asarray(self._rows[shard], dtype=np.int64)
            if not len(rows):
                continue
            if rng is not None:
                rows = rng.permutation(rows)
            data = np.load(self.directory / self._shards[shard]["file"], mmap_mode="r")
            keys = self._keys_by_shard[shard]
            for start in range(0, len(rows), batch_size):
                chosen = rows[start:start + batch_size]
                yield [keys[r] for r in chosen], np.asarray(data[chosen])


def prepared_images(catalog_path, photos, size, *, progress=True, decode=True) -> ImageSet:
    """The photos decoded at this size, from the cache beside the catalog or decoded now."""
    keys = sorted(p["key"] for p in photos)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    directory = Path(f"{catalog_path}.images") / f"{size}px-{digest}"
    if (directory / "index.json").exists():
        return ImageSet(directory)
    wanted = set(keys)
    for index in sorted(directory.parent.glob(f"{size}px-*/index.json")):  # e.g. all photos, by `lablr prepare`
        found = ImageSet(index.parent)
        if wanted <= set(found.keys):
            return found.subset(keys)
    if not decode:  # the workers of a multi-worker job would decode into the same place at once
        raise LablrError(f"The images of {catalog_path} are not prepared at {size}x{size}: run "
                         f"`lablr prepare --catalog {catalog_path} --size {size}` first.")
    return prepare(photos, directory, size, progress=progress)


def encode_set(encoder, images: ImageSet):
    """(keys, latents) of every image in the set, in the set's order."""
    keys, latents = [], []
    for batch_keys, batch in images.keyed_batches(256):
        keys += batch_keys
        latents.append(encoder.encode(batch))
    return keys, (np.concatenate(latents) if latents else np.zeros((0, encoder.latent_dim)))
