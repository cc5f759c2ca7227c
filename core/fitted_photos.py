"""Which photos a bundle's tag statistics hold: `fitted_photos.npz`, so that `lablr fit --add` adds only
photos the sums do not hold yet.

A photo is named by a 64-bit id: the first 8 bytes (big-endian) of the BLAKE2b digest of its catalog
key. The key is the photo's source and its id there (`flickr:53012345678`, `openclipart:animals/cat`,
`file:/home/me/cat.jpg`), so the same photo in a re-fetched or grown catalog has the same id. The
record is one sorted uint64 array: 8 bytes a photo, 800 kB for 100,000 photos. Two of n photos share
an id with a chance of about n²/2⁶⁵ (one in 3.7 billion at 100,000 photos); such a photo would be
taken for one the model holds.

Only the stages that know which photos went into the sums make a record (`stages.assemble`, and
`lablr fit --add` for the union), and a loaded bundle keeps its own while its statistics are unchanged;
a bundle without the file cannot tell (one written before Lablr recorded the photos).
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lablr.core.errors import BundleError
from lablr.core.npz import expect, read_npz

FILE = "fitted_photos.npz"
WHAT = "the record of fitted photos"
# Read from the file's header before its data: a crafted record costs no more than one of 2²⁷ photos (1 GiB).
MAX_PHOTOS = 1 << 27


def photo_id(key: str) -> int:
    """The 64-bit id of a photo's catalog key."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, eq=False)  # arrays: compare their ids, not the records
class FittedPhotos:
    """The ids of the photos a tag model's statistics hold, sorted, each once."""

    ids: np.ndarray  # uint64, sorted, unique

    @classmethod
    def of_keys(cls, keys) -> "FittedPhotos":
        return cls(np.unique(np.fromiter((photo_id(k) for k in keys), dtype=np.uint64)))

    @classmethod
    def none(cls) -> "FittedPhotos":
        return cls(np.zeros(0, dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.ids)

    def holds(self, keys) -> np.ndarray:
        """For each key, whether the statistics hold its photo."""
        wanted = np.fromiter((photo_id(k) for k in keys), dtype=np.uint64)
        return np.isin(wanted, self.ids, assume_unique=False)

    def union(self, keys) -> "FittedPhotos":
        return FittedPhotos(np.union1d(self.ids, FittedPhotos.of_keys(keys).ids))

    def save(self, directory: Path):
        np.savez(Path(directory) / FILE, ids=self.ids)  # random ids: compression would gain nothing

    @classmethod
    def read(cls, directory: Path) -> "FittedPhotos":
        path = Path(directory) / FILE
        ids = read_npz(path, ("ids",), lambda headers: _check_header(headers, path), what=WHAT)["ids"]
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            raise BundleError(f"{WHAT.capitalize()} in {path} is not sorted: the bundle is damaged.")
        return cls(ids)


def _check_header(headers, path):
    expect(headers, "ids", (None,), path, WHAT)
    shape, dtype = headers["ids"]
    if dtype != np.dtype("<u8"):
        raise BundleError(f"{WHAT.capitalize()} in {path}: ids are {dtype.str}, not <u8 (64-bit unsigned integers).")
    if shape[0] > MAX_PHOTOS:
        raise BundleError(f"{WHAT.capitalize()} in {path} declares {shape[0]:,} photos: more than Lablr reads "
                          f"({MAX_PHOTOS:,}).")
