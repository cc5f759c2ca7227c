"""Files and folders written at a name the user gives (`lablr export FILE`, `plot -o FILE`, `personal export
FILE`, a bundle's `--out`): never over a file or a folder of the user's own.

A file already there is replaced only when it is one the same command writes (run again, it writes it
anew). Anything else at that name is the user's (a photo, the catalog, another program's data): the
command refuses in one line, naming it, and writes nothing.
"""

import os
import stat
import zlib
from collections.abc import Callable
from pathlib import Path

from lablr.core.errors import LablrError

HEAD_BYTES = 4096  # what is read of a file there to tell whether it is one Lablr wrote


def check_replaceable(path, kind: str, is_ours: Callable[[bytes], bool]):
    """Raise unless nothing is at `path`, or an empty file (`mktemp` makes one), or a file of `kind` (told by
    `is_ours` from its first bytes), or a stream (files.write_output writes into it, replacing nothing)."""
    path = Path(path)
    try:
        found = path.stat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise LablrError(f"{path} cannot be looked at ({error.strerror}), so Lablr does not write there.") from None
    if is_stream(found.st_mode):
        return
    head = _head(path) if stat.S_ISREG(found.st_mode) else None
    if head is not None and (not head or is_ours(head)):
        return
    raise LablrError(f"{path} is there already and is not {kind}: Lablr leaves it as it is. Give another name, "
                     "or move it away first.")


def is_stream(mode: int) -> bool:
    """A pipe or a character device (a terminal, /dev/null; `/dev/stdout` is one of these or a file): written
    into as it is, never replaced."""
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def check_replaceable_folder(path, kind: str, is_ours: Callable[[Path], bool]):
    """Raise unless nothing is at `path`, or an empty folder, or a folder of `kind` (told by `is_ours`): a folder
    is replaced whole, so a folder of the user's given by mistake (`--out ~/Pictures`) would be lost."""
    path = Path(path)
    if path.name in ("", ".."):  # `.`, `..`, `/`: a folder is written beside its place, under its name
        raise LablrError(f"{path} names no folder of its own: give the new folder a name, such as my-model.")
    if not os.path.lexists(path) or (path.is_dir() and (not any(path.iterdir()) or is_ours(path))):
        return
    raise LablrError(f"{path} is there already and is not {kind}: Lablr leaves it as it is (it would replace the "
                     "whole folder). Give a new folder.")


def _head(path: Path) -> bytes | None:
    """The file's first bytes, or None when it cannot be read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with open(descriptor, "rb") as file:
        return file.read(HEAD_BYTES)


# -- `lablr plot -o FILE`: a picture says it was drawn by Lablr, so that a later plot may replace it ------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_END = len(PNG_SIGNATURE) + 25  # the IHDR chunk, always first: length, type, 13 bytes, CRC
DRAWN_BY = b"Drawn by Lablr"
SVG_MARK = b"<!-- " + DRAWN_BY + b" -->\n"


def mark_picture(data: bytes, picture_format: str) -> bytes:
    """The picture with a note that Lablr drew it: a PNG text chunk right after the header, an SVG comment."""
    if picture_format == "png" and data.startswith(PNG_SIGNATURE):
        return data[:PNG_HEADER_END] + _png_chunk(b"tEXt", b"Comment\x00" + DRAWN_BY) + data[PNG_HEADER_END:]
    if picture_format == "svg":
        declaration_end = data.find(b"?>") + 2 if data.startswith(b"<?xml") else 0
        return data[:declaration_end] + b"\n" * bool(declaration_end) + SVG_MARK + data[declaration_end:].lstrip()
    return data


def is_lablr_picture(head: bytes) -> bool:
    return DRAWN_BY in head[:512]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
