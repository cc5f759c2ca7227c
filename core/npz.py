""".npz files from a bundle, read so that a crafted one costs no more than an honest one.

`read_npz` reads each array's header (shape and dtype, a few hundred bytes) before any data
is decompressed, and asks the caller to check those shapes: a file of zipped zeros that
declares 100,000 tags, or tag names of a gigabyte, is refused before it takes gigabytes
(no array may declare more than MAX_BUNDLE_ARRAY_BYTES). No pickle (object arrays are
refused), only the arrays asked for, and every floating-point value must be finite.
"""

import math
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from lablr.core import defaults
from lablr.core.errors import BundleError

Headers = dict[str, tuple[tuple[int, ...], np.dtype]]


def read_npz(path, names, check: Callable[[Headers], None], *, optional=(), what: str = "the arrays") -> dict:
    """{name: array} for `names` (and those of `optional` that are there) of the .npz at path.

    `check(headers)` sees {name: (shape, dtype)} first and raises BundleError for shapes the
    reader does not expect. Raises BundleError for anything unreadable, missing or not finite.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            present = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing = [name for name in names if name not in present]
            if missing:
                raise BundleError(f"{what.capitalize()} in {path} lack {', '.join(missing)}.")
            wanted = [*names, *(name for name in optional if name in present)]
            headers = {name: _header(archive, present[name]) for name in wanted}
            for name, (_, dtype) in headers.items():
                if dtype.hasobject:
                    raise BundleError(f"{what.capitalize()} in {path} hold Python objects ({name}), which Lablr "
                                      "never unpickles.")
            for name, (shape, dtype) in headers.items():
                declared = math.prod(shape) * dtype.itemsize
                if declared > defaults.MAX_BUNDLE_ARRAY_BYTES:
                    raise BundleError(f"{what.capitalize()} in {path}: {name} declares {declared:,} bytes, more than "
                                      f"Lablr reads from one array ({defaults.MAX_BUNDLE_ARRAY_BYTES:,}).")
            check(headers)
            arrays = {name: _array(archive, present[name]) for name in wanted}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise BundleError(f"{what.capitalize()} in {path} cannot be read: {error}") from None
    for name, array in arrays.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise BundleError(f"{what.capitalize()} in {path} hold values that are not finite numbers ({name}).")
    return arrays


def _header(archive, member):
    with archive.open(member) as file:
        version = np.lib.format.read_magic(file)
        shape, _fortran_order, dtype = _read_header(file, version)
    return tuple(shape), dtype


def _read_header(file, version):
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(file)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(file)
    raise ValueError(f"an array of .npy format {version}")


def _array(archive, member):
    with archive.open(member) as file:
        return np.lib.format.read_array(file, allow_pickle=False)


def expect(headers: Headers, name: str, shape, path, what: str):
    """Raise BundleError unless the array `name` has `shape` (None in it: any length there)."""
    found = headers[name][0]
    same_rank = len(found) == len(shape)
    if not same_rank or any(want is not None and want != got for want, got in zip(shape, found, strict=True)):
        shown = tuple("any" if want is None else want for want in shape)
        raise BundleError(f"{what.capitalize()} in {path}: {name} has shape {found}, not {shown}.")


def tag_names(array, path, what: str) -> list[str]:
    """The names in a bundle's array of tags; one that is not a tag Lablr would take from a user (empty, a control
    character, a right-to-left override that would show it reversed) is refused: it is shown on the web page and
    typed into Flickr by the extension."""
    from lablr.core.data.catalog import TAG_RULE, is_acceptable_tag

    names = [str(name) for name in array]
    bad = next((name for name in names if not is_acceptable_tag(name)), None)
    if bad is not None:
        raise BundleError(f"{what.capitalize()} in {path} name a tag that is not {TAG_RULE}: {bad[:40]!r}.")
    return names
