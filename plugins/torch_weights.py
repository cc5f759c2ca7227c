"""Read a PyTorch state dict (tensors only) into numpy arrays, without PyTorch and without risk.

A .pth file is a pickle, and a pickle can call any function it names: `torch.load` on a
stranger's file runs the stranger's code. This reader never does. It admits the handful of
names a plain state dict needs, and maps each to a stand-in of its own that only records
numbers:

    collections.OrderedDict            the state dict itself
    torch._utils._rebuild_tensor_v2    a tensor: storage, offset, shape, strides
    torch.FloatStorage, ...            the element type of a storage

Any other name (`os.system`, `builtins.eval`, a torch.nn module...) is refused with a
`WeightsError` before anything is called. Callers also pin the file by SHA-256
(`load_state_dict(path, sha256=...)`), so only the exact file that was reviewed is read.

Two layouts exist. The one read here is PyTorch's legacy format (torch.save before 1.6):
five pickles in a row (magic number, protocol version, system info, the state dict with
persistent ids for its storages, the list of storage keys), then each storage's raw bytes,
preceded by its element count as a little-endian int64. The newer zip layout is recognised
and refused with a message, since no weights Lablr uses come that way.
"""

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lablr.core.errors import LablrError
from lablr.core.files import sha256_file

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class -> numpy element type (little-endian, as the file's system info must say)
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class WeightsError(LablrError):
    """A weights file that cannot be used: not the expected file, not tensors only, damaged."""

    code = "bad_weights"
    status = 500


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self):
        return np.dtype(STORAGE_DTYPES[self.name])


@dataclass
class _Storage:
    key: str
    type: _StorageType
    count: int
    data: np.ndarray | None = None  # filled in once the raw bytes have been read


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple
    strides: tuple

    def array(self) -> np.ndarray:
        """The tensor as its own contiguous numpy array, after checking it stays inside its storage."""
        shape, strides = tuple(int(n) for n in self.shape), tuple(int(s) for s in self.strides)
        if len(shape) != len(strides) or any(n < 0 for n in shape) or any(s < 0 for s in strides) or self.offset < 0:
            raise WeightsError(f"A tensor in the weights file has an invalid layout: shape {shape}, strides {strides}.")
        if 0 in shape:
            return np.zeros(shape, self.storage.type.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(shape, strides))
        if last >= self.storage.count:
            raise WeightsError(f"A tensor in the weights file reaches past its storage "
                               f"(element {last} of {self.storage.count}): the file is damaged.")
        data = self.storage.data
        if not shape:  # a scalar (as_strided would take an empty shape for "keep the shape")
            return np.array(data[self.offset])
        itemsize = data.itemsize
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=shape,
                                               strides=tuple(s * itemsize for s in strides), writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """Stand-in for torch._utils._rebuild_tensor_v2 (and _rebuild_tensor): records, calls nothing."""
    if not isinstance(storage, _Storage):
        raise WeightsError("The weights file builds a tensor from something that is not a storage.")
    if not (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)):
        raise WeightsError("The weights file describes a tensor with fields of the wrong types.")
    return _TensorRef(storage, storage_offset, size, stride)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows only the names of a tensor file; everything else is refused."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise WeightsError(f"The weights file asks for {module}.{name}, which a file of plain tensors never "
                               f"needs; it was refused and nothing in it was run. Use the weights file from "
                               f"the package Lablr names, or report where this file came from.")
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError(f"The weights file refers to an object of kind {str(pid)[:60]!r}; only tensor "
                               f"storages are read.")
        _, storage_type, key, _location, count, *rest = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(count, int):
            raise WeightsError("The weights file describes a storage with fields of the wrong types.")
        if rest and rest[0] is not None:
            raise WeightsError("The weights file uses storage views, which this reader does not support.")
        known = self.storages.get(key)
        if known is None:
            known = self.storages[key] = _Storage(key, storage_type, count)
        elif known.type != storage_type or known.count != count:
            raise WeightsError(f"The weights file describes storage {key} in two different ways.")
        return known


def load_state_dict(path, *, sha256: str) -> dict[str, np.ndarray]:
    """The tensors of the PyTorch file at `path`, which must have exactly this SHA-256."""
    path = Path(path)
    try:
        found = sha256_file(path)
    except OSError as error:
        raise WeightsError(f"Cannot read the weights file {path}: {error.strerror or error}.") from None
    if found != sha256:
        raise WeightsError(f"The weights file {path} is not the one Lablr expects (SHA-256 {found[:16]}..., "
                           f"expected {sha256[:16]}...); it was not read. Reinstall the package that provides it.")
    with open(path, "rb") as file:
        return read_state_dict(file)


def read_state_dict(file) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format PyTorch file, read with the restricted unpickler.

    Takes an open binary file; callers that did not check the file's checksum should not use
    the result for anything that matters (see `load_state_dict`).
    """
    head = file.read(4)
    file.seek(0)
    if head.startswith(b"PK"):
        raise WeightsError("This weights file is in PyTorch's zip format; Lablr reads only the legacy "
                           "format its pinned weights use.")
    try:
        return _read_legacy(file)
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, MemoryError) as error:
        raise WeightsError(f"The weights file is damaged or not a PyTorch state dict ({type(error).__name__}: "
                           f"{str(error)[:200]}).") from None


def _read_legacy(file) -> dict[str, np.ndarray]:
    if RestrictedUnpickler(file).load() != LEGACY_MAGIC:
        raise WeightsError("This is not a PyTorch weights file (its magic number is wrong).")
    if RestrictedUnpickler(file).load() != LEGACY_PROTOCOL:
        raise WeightsError("This PyTorch weights file has an unknown protocol version.")
    info = RestrictedUnpickler(file).load()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise WeightsError("This PyTorch weights file was written on a big-endian machine; it is not supported.")
    unpickler = RestrictedUnpickler(file)
    state = unpickler.load()
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef)
                                              for k, v in state.items()):
        raise WeightsError("The weights file holds something other than a state dict of tensors.")
    keys = RestrictedUnpickler(file).load()
    if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
        raise WeightsError("The weights file's storage list does not match its tensors: the file is damaged.")
    for key in keys:
        storage = unpickler.storages[key]
        count = int.from_bytes(_read_exactly(file, 8), "little", signed=True)
        if count != storage.count:
            raise WeightsError(f"Storage {key} holds {count} elements where the file said {storage.count}.")
        raw = _read_exactly(file, count * storage.type.dtype.itemsize)
        storage.data = np.frombuffer(raw, storage.type.dtype)
    return {name: ref.array() for name, ref in state.items()}


def _read_exactly(file, n: int) -> bytes:
    data = file.read(n)
    if len(data) != n:
        raise WeightsError("The weights file ends early: it is truncated.")
    return data


__all__ = ["RestrictedUnpickler", "WeightsError", "load_state_dict", "read_state_dict"]
