"""File helpers: the SHA-256 of a file, and writing files and directories all or nothing.

Every write that must survive a crash or a kill goes through `atomic_file` or `atomic_directory`:
write beside the target under a hidden partial name, flush and fsync, rename over the target,
then fsync the directory so that the rename itself survives a power cut. A failure removes the
partial and leaves the target as it was.
"""

import glob
import hashlib
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from lablr.core.outputs import check_replaceable, check_replaceable_folder, is_stream

BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(directory: Path):
    """Make a rename in the directory survive a power cut."""
    _fsync(directory)


def partial_path(target: Path, kind: str = "partial") -> Path:
    """The hidden name beside `target` that a write uses until it is complete (one per process)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}")


def alive(pid: int) -> bool:
    """Whether a process of this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


def ready_to_replace(target, kind: str, is_ours: Callable[[Path], bool]):
    """Before writing the folder `target`: what killed writes of it left beside it is removed, and `target` must
    be absent, empty or of this kind (outputs.check_replaceable_folder)."""
    remove_leftovers(Path(target))
    check_replaceable_folder(target, kind, is_ours)


def remove_leftovers(target: Path):
    """Remove what writes of the folder `target` that were killed left beside it (a half-written copy can be
    gigabytes: a prepared image set). A folder moved aside by one killed between its two renames is put back."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*-*"):
        kind, _, pid = leftover.name[len(target.name) + 2:].rpartition("-")
        if kind not in ("partial", "old") or not pid.isdigit() or alive(int(pid)):
            continue
        if kind == "old" and not os.path.lexists(target):
            leftover.rename(target)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def atomic_file(target, mode: str = "wb", *, partial: Path | None = None):
    """Yield an open file beside `target`; when the block ends without error it becomes `target`.

    The caller writes and may set the partial's metadata (`file.name` is its path) before the
    rename; it may also raise to leave `target` untouched. `partial`: another name beside the
    target, for a writer whose leftovers are found by their name (the Flickr downloads).
    """
    target = Path(target)
    partial = Path(partial) if partial else partial_path(target)
    try:
        with _open_beside(target, partial, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def _open_beside(target: Path, partial: Path, mode: str):
    """The partial file, opened; an error names the target, the file the user asked for."""
    try:
        return open(partial, mode)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, str(target)) from None


def write_atomically(target, data: bytes | str):
    """`target` holds exactly `data`, or (after a crash) what it held before."""
    with atomic_file(target, "w" if isinstance(data, str) else "wb") as file:
        file.write(data)


def write_output(target, data: bytes | str, kind: str, is_ours: Callable[[bytes], bool]):
    """Write a file at a name the user gave (`lablr export FILE`): into a pipe or a terminal as it is (`lablr
    export /dev/stdout`); else whole (write_atomically), at a free name or over an empty file or one of `kind`
    (outputs.check_replaceable), and through a symbolic link into the file it names, never over the link."""
    check_replaceable(target, kind, is_ours)
    try:
        streaming = is_stream(os.stat(target).st_mode)
    except FileNotFoundError:
        streaming = False
    if streaming:
        with open(target, "w" if isinstance(data, str) else "wb") as stream:
            stream.write(data)
    else:
        write_atomically(os.path.realpath(target), data)


@contextmanager
def atomic_directory(target, kind: str, is_ours: Callable[[Path], bool]):
    """Yield an empty directory beside `target`; when the block ends without error it replaces `target` (or the
    folder it links to), which must be absent, empty or of this kind (outputs.check_replaceable_folder).

    A directory cannot be renamed over a non-empty one: the old one is moved aside first and
    removed after, so a reader sees the old directory or the new one, never a mix.
    """
    ready_to_replace(target, kind, is_ours)
    target = Path(os.path.realpath(target))  # through a link (models/current -> v3): v3 is replaced, the link kept
    partial = partial_path(target)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        for path in partial.rglob("*"):
            if path.is_file():
                _fsync(path)
        old = partial_path(target, "old")
        if target.exists():
            target.rename(old)
        partial.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    fsync_dir(target.parent)


def _fsync(path: Path):
    """Flush a file's or a directory's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
