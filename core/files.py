"""File helpers: the SHA-256 of a file (bundle files, downloaded images, pinned weights), and
making a rename durable (every write-beside-then-rename in Lablr ends with it)."""

import hashlib
import os
from pathlib import Path

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
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
